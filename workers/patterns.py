"""Life patterns: reading plaintext (``.cells``) and RLE (``.rle``) files, and laying a pattern or
a random start on a grid.

A grid is a list of rows, each a list of bools (True = alive). Every problem with a file is a
:class:`PatternError` naming the file and what is wrong with it.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

Grid = list[list[bool]]

# The patterns shipped with the demo (webapp/gameoflife/patterns/<name>.cells or .rle).
SHIPPED = Path(__file__).resolve().parent.parent / "webapp" / "gameoflife" / "patterns"
ALIVE_PLAINTEXT = "O*"
DEAD_PLAINTEXT = "."
_RLE_HEADER = re.compile(r"x\s*=\s*(\d+)\s*,\s*y\s*=\s*(\d+)\s*(?:,\s*rule\s*=\s*(\S+))?\s*\Z", re.I)
_RLE_RUN = re.compile(r"(\d*)(\D)")
_LIFE_RULES = {"B3/S23", "23/3"}


class PatternError(ValueError):
    """A pattern file that cannot be read, parsed or placed; the message names the file."""


def shipped_patterns() -> list[str]:
    """Returns the names of the shipped patterns (file names without extension), sorted."""
    return sorted(path.stem for path in SHIPPED.iterdir() if path.suffix in (".cells", ".rle"))


def resolve(name: str) -> Path:
    """Returns the path of pattern ``name``: an existing file, else a shipped pattern of that
    name (``glider``, ``gosper``, ...). Raises PatternError if neither exists."""
    path = Path(name)
    if path.exists():
        return path
    for suffix in (".cells", ".rle"):
        shipped = SHIPPED / f"{name}{suffix}"
        if "/" not in name and shipped.is_file():
            return shipped
    raise PatternError(f"{name}: no such file (shipped patterns: {', '.join(shipped_patterns())})")


def load(name: str) -> Grid:
    """Reads pattern ``name`` (a path, or a shipped pattern's name) in plaintext or RLE format,
    told apart by the ``.rle`` extension or an ``x = ...`` header. Returns its rows, all of the
    same width. Raises PatternError."""
    path = resolve(name)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PatternError(f"{path}: cannot read the file ({exc})") from exc
    try:
        rows = parse_rle(text) if _looks_like_rle(path, text) else parse_plaintext(text)
    except ValueError as exc:
        raise PatternError(f"{path}: {exc}") from exc
    if not rows:
        raise PatternError(f"{path}: the pattern is empty")
    return rows


def load_placed(name: str, size: int, center: bool = True) -> Grid:
    """Reads pattern ``name`` and places it on a size × size grid (see :func:`load` and
    :func:`place`); every PatternError names the file."""
    path = resolve(name)
    try:
        return place(load(str(path)), size, center)
    except PatternError as exc:
        message = str(exc)
        raise PatternError(message if message.startswith(f"{path}: ") else f"{path}: {message}") from exc


def _looks_like_rle(path: Path, text: str) -> bool:
    if path.suffix.lower() == ".rle":
        return True
    for line in text.splitlines():
        if line.strip() and not line.startswith(("#", "!")):
            return _RLE_HEADER.match(line.strip()) is not None
    return False


def parse_plaintext(text: str) -> Grid:
    """Parses the plaintext format: ``!`` starts a comment line, ``O`` (or ``*``) is alive, ``.``
    is dead, short lines are padded with dead cells. Raises ValueError on any other character."""
    rows: Grid = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("!"):
            continue
        line = line.rstrip()
        for column, char in enumerate(line, 1):
            if char not in ALIVE_PLAINTEXT and char not in DEAD_PLAINTEXT:
                raise ValueError(f"line {number}, column {column}: unexpected {char!r} "
                                 f"(plaintext cells are 'O' alive and '.' dead)")
        rows.append([char in ALIVE_PLAINTEXT for char in line])
    while rows and not rows[-1]:
        rows.pop()
    return _padded(rows)


def parse_rle(text: str) -> Grid:
    """Parses run-length encoding: ``#`` comment lines, an ``x = m, y = n[, rule = B3/S23]`` header,
    then runs of ``b`` (dead), ``o`` (alive) and ``$`` (end of row) closed by ``!``. Raises
    ValueError for a missing or bad header, another rule, an unknown tag or runs beyond x × y."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        raise ValueError("no RLE header (expected 'x = <width>, y = <height>')")
    header = _RLE_HEADER.match(lines[0])
    if header is None:
        raise ValueError(f"bad RLE header {lines[0][:60]!r} (expected 'x = <width>, y = <height>')")
    width, height = int(header.group(1)), int(header.group(2))
    rule = header.group(3)
    if rule is not None and rule.upper() not in _LIFE_RULES:
        raise ValueError(f"rule {rule} is not supported: only Conway's Life (B3/S23)")
    body = "".join(lines[1:])
    end = body.find("!")
    if end < 0:
        raise ValueError("the RLE data does not end with '!'")
    rows: Grid = [[]]
    position = 0
    for match in _RLE_RUN.finditer(body[:end]):
        if match.start() != position:
            break
        position = match.end()
        count = int(match.group(1) or 1)
        tag = match.group(2)
        if tag == "$":
            rows.extend([] for _ in range(count))
        elif tag in "bo":
            rows[-1].extend([tag == "o"] * count)
            if len(rows[-1]) > width or len(rows) > height:
                raise ValueError(f"the RLE data goes beyond the header's size x = {width}, y = {height}")
        else:
            raise ValueError(f"unexpected {tag!r} in the RLE data (tags are b, o, $ and !)")
    if position != end:
        raise ValueError(f"a run count without a tag at the end of the RLE data ({body[position:end][:20]!r})")
    rows = rows[:height] + [[] for _ in range(height - len(rows))]
    return [row + [False] * (width - len(row)) for row in rows]


def _padded(rows: Grid) -> Grid:
    width = max((len(row) for row in rows), default=0)
    return [row + [False] * (width - len(row)) for row in rows]


def place(pattern: Grid, size: int, center: bool = True) -> Grid:
    """Returns a size × size grid holding ``pattern``, centred (or at the top left). Raises
    PatternError if the pattern has more rows or columns than the grid."""
    height, width = len(pattern), max((len(row) for row in pattern), default=0)
    if height > size:
        raise PatternError(f"too many rows in the pattern ({height}) for a {size}×{size} grid: increase size?")
    if width > size:
        raise PatternError(f"too many columns in the pattern ({width}) for a {size}×{size} grid: increase size?")
    top, left = ((size - height) // 2, (size - width) // 2) if center else (0, 0)
    grid = [[False] * size for _ in range(size)]
    for row, cells in enumerate(pattern):
        for column, alive in enumerate(cells):
            grid[top + row][left + column] = alive
    return grid


def random_grid(size: int, seed: int | None = None, density: float = 0.25) -> Grid:
    """Returns a size × size grid where each cell is alive with probability ``density`` (one in
    four by default, as in the original demo); the same ``seed`` gives the same grid."""
    rng = random.Random(seed)
    return [[rng.random() < density for _ in range(size)] for _ in range(size)]


def to_plaintext(grid: Grid) -> str:
    """Returns ``grid`` in the plaintext format, one line per row (``O`` alive, ``.`` dead)."""
    return "".join("".join("O" if alive else "." for alive in row) + "\n" for row in grid)
