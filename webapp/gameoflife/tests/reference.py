"""A plain reference Game of Life in NumPy, to check the distributed one against."""
from __future__ import annotations

import numpy as np

from workers.patterns import Grid


def generations(grid: Grid, steps: int, wrap: bool = True) -> Grid:
    """Returns ``grid`` after ``steps`` generations of B3/S23, on a torus or with dead cells
    all around."""
    cells = np.array(grid, dtype=np.uint8)
    height, width = cells.shape
    for _ in range(steps):
        padded = np.pad(cells, 1, mode="wrap" if wrap else "constant")
        around = sum(padded[1 + dr:1 + dr + height, 1 + dc:1 + dc + width]
                     for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc)
        cells = ((around == 3) | ((cells == 1) & (around == 2))).astype(np.uint8)
    return cells.astype(bool).tolist()
