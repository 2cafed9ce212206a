"""The distributed Game of Life against the reference, through nginx and uWSGI: one WebSocket
per cell, states relayed by the server, final grids written by ``--output``."""
from __future__ import annotations

import pytest

from workers.patterns import load, place, random_grid

from .reference import generations

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("wrap", [True, False], ids=["torus", "edges"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_grids_match_the_reference(play, seed, wrap):
    options = ["-s", "16", "-n", "24", "--seed", str(seed)] + ([] if wrap else ["-W"])
    final = play(*options)
    assert final == generations(random_grid(16, seed), 24, wrap)
    assert final != random_grid(16, seed)  # something happened


def test_a_glider_moves_one_cell_diagonally_every_four_generations(play):
    start = place(load("glider"), 10)
    final = play("-s", "10", "-p", "glider", "-n", "4")
    shifted = [row[-1:] + row[:-1] for row in start[-1:] + start[:-1]]  # one row down, one right
    assert final == shifted
    assert final != start


@pytest.mark.parametrize(("pattern", "period"), [("blinker", 2), ("pulsar", 3)])
def test_oscillators_return_after_their_period(play, pattern, period):
    start = place(load(pattern), 16)
    assert play("-s", "16", "-p", pattern, "-n", str(period)) == start
    halfway = play("-s", "16", "-p", pattern, "-n", str(period - 1))
    assert halfway != start
    assert halfway == generations(start, period - 1)


def test_without_wrap_the_gun_emits_gliders_that_leave_the_grid(play):
    steps = 112  # two gliders emitted, gone through the bottom right corner, debris gone
    start = place(load("gosper"), 36, center=False)
    final = play("-s", "36", "-p", "gosper", "-C", "-W", "-n", str(steps))
    assert final == generations(start, steps, wrap=False)
    # On a larger grid the gliders are still there, beyond the first 36 rows and columns;
    # within them the two grids agree: the gun is intact and nothing was left behind.
    larger = generations(place(load("gosper"), 60, center=False), steps, wrap=False)
    assert sum(map(sum, larger)) - sum(map(sum, final)) == 2 * 5
    assert [row[:36] for row in larger[:36]] == final
    # On a torus they would have come back in through the opposite edges.
    assert generations(start, steps, wrap=True) != final
