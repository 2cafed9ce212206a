"""Pattern files (plaintext and RLE), placing them on a grid, random starts, neighbourhoods."""
from __future__ import annotations

import pytest

from workers.gameoflife import neighbours
from workers.patterns import (
    PatternError,
    load,
    parse_plaintext,
    parse_rle,
    place,
    random_grid,
    shipped_patterns,
    to_plaintext,
)

from .reference import generations

X, _ = True, False  # alive, dead


def test_plaintext_skips_comments_and_pads_short_lines():
    assert parse_plaintext("!Name: test\n!comment\n.O\nOOO\n\nO\n") == [
        [_, X, _], [X, X, X], [_, _, _], [X, _, _]]


def test_plaintext_refuses_other_characters():
    with pytest.raises(ValueError, match=r"line 2, column 3: unexpected 'x'"):
        parse_plaintext("OO\n..x\n")


def test_rle_runs_rows_and_header_size():
    assert parse_rle("#C a comment\nx = 4, y = 3, rule = B3/S23\n2bo$\n4o$o!") == [
        [_, _, X, _], [X, X, X, X], [X, _, _, _]]
    assert parse_rle("x = 3, y = 3\n2$3o!") == [[_, _, _], [_, _, _], [X, X, X]]


@pytest.mark.parametrize(("text", "problem"), [
    ("", "no RLE header"),
    ("bo$ob!", "bad RLE header"),
    ("x = 3, y = 1, rule = B36/S23\n3o!", "rule B36/S23 is not supported"),
    ("x = 3, y = 1\n3o", "does not end with '!'"),
    ("x = 3, y = 1\n2ox!", "unexpected 'x'"),
    ("x = 2, y = 1\n3o!", "beyond the header's size"),
    ("x = 2, y = 1\no$o!", "beyond the header's size"),
    ("x = 2, y = 1\no3!", "a run count without a tag"),
])
def test_bad_rle_says_what_is_wrong(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_rle(text)


def test_shipped_patterns_read_and_behave():
    assert set(shipped_patterns()) >= {"blinker", "toad", "beacon", "pulsar", "glider", "lwss", "mwss",
                                       "hwss", "gosper"}
    for name in ("blinker", "toad", "beacon"):
        start = place(load(name), 8)
        assert generations(start, 2) == start != generations(start, 1)
    for name in ("lwss", "mwss", "hwss"):  # spaceships: the same shape two cells to the left
        start = place(load(name), 12)
        assert generations(start, 4) == [row[2:] + row[:2] for row in start]
    assert len(load("gosper")) == 9 and len(load("gosper")[0]) == 36


def test_load_names_the_file_and_the_problem(tmp_path):
    bad = tmp_path / "bad.rle"
    bad.write_text("x = 1, y = 1\nq!")
    with pytest.raises(PatternError, match=rf"{bad}: unexpected 'q'"):
        load(str(bad))
    with pytest.raises(PatternError, match="nosuch: no such file"):
        load("nosuch")
    with pytest.raises(PatternError, match="cannot read the file"):
        load(str(tmp_path))  # a directory is not readable as a pattern
    binary = tmp_path / "binary.cells"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(PatternError, match="cannot read the file"):
        load(str(binary))
    empty = tmp_path / "empty.cells"
    empty.write_text("!nothing\n")
    with pytest.raises(PatternError, match="the pattern is empty"):
        load(str(empty))
    rle_without_extension = tmp_path / "glider"
    rle_without_extension.write_text("x = 3, y = 3\nbo$2bo$3o!")
    assert load(str(rle_without_extension)) == load("glider")


def test_place_centres_or_not_and_refuses_what_does_not_fit():
    glider = load("glider")
    centred = place(glider, 7)
    assert [row[2:5] for row in centred[2:5]] == glider
    assert sum(map(sum, centred)) == 5
    corner = place(glider, 7, center=False)
    assert [row[:3] for row in corner[:3]] == glider
    with pytest.raises(PatternError, match=r"too many rows in the pattern \(13\) for a 12×12 grid"):
        place(load("pulsar"), 12)
    with pytest.raises(PatternError, match=r"too many columns in the pattern \(36\) for a 20×20 grid"):
        place(load("gosper"), 20)


def test_random_grid_is_reproducible_with_one_cell_in_four_alive():
    grid = random_grid(64, seed=7)
    assert grid == random_grid(64, seed=7) != random_grid(64, seed=8)
    assert 0.2 < sum(map(sum, grid)) / 64**2 < 0.3


def test_plaintext_output_round_trips():
    grid = random_grid(9, seed=1)
    assert parse_plaintext(to_plaintext(grid)) == grid


def test_neighbours_on_a_torus_and_with_edges():
    assert sorted(neighbours(4, 0, 0, wrap=True)) == [1, 3, 4, 5, 7, 12, 13, 15]
    assert sorted(neighbours(4, 0, 0, wrap=False)) == [1, 4, 5]
    assert len(neighbours(4, 1, 2, wrap=False)) == 8
    assert neighbours(1, 0, 0, wrap=True) == [0] * 8  # a 1×1 torus: the cell is all around itself
    assert neighbours(1, 0, 0, wrap=False) == []
