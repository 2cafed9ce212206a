"""``manage.py gameoflife``: bad options and files are CommandErrors that say what is wrong."""
from __future__ import annotations

import threading

import pytest
from django.core.management import CommandError, call_command

from deploy.stack import free_port


def gameoflife(**options):
    """Runs the command in a thread of its own (its event loop must not meet another one)."""
    outcome = {}

    def run():
        try:
            call_command("gameoflife", **options)
        except BaseException as exc:  # handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the command did not return within 60 s"
    if "error" in outcome:
        raise outcome["error"]


@pytest.mark.parametrize(("options", "problem"), [
    ({"pattern": "pulsar", "size": 12}, "pulsar.cells: too many rows in the pattern (13) for a 12×12 grid"),
    ({"pattern": "gosper", "size": 30}, "gosper.rle: too many columns in the pattern (36) for a 30×30 grid"),
    ({"pattern": "no/such/file.cells"}, "no/such/file.cells: no such file"),
    ({"size": 0}, "--size must be from 1 to 1024, not 0"),
    ({"steps": -1}, "--steps must be 0 or more, not -1"),
    ({"speed": -2.0}, "--speed must be 0 (no limit) or more, not -2.0"),
    ({"processes": 0}, "--processes must be at least 1, not 0"),
    ({"processes": 65, "size": 8}, "--processes 65: more processes than cells (64)"),
    ({"output": "final.cells"}, "--output needs --steps"),
    ({"output": "/no/such/dir/final.cells", "steps": 3}, "no such directory /no/such/dir"),
    ({"url": "http://127.0.0.1:8000/ws/gameoflife/", "steps": 1},
     "'http://127.0.0.1:8000/ws/gameoflife/' is not a ws:// URL "
     "(expected e.g. ws://127.0.0.1:8000 or ws://127.0.0.1:8000/ws/gameoflife/)"),
])
def test_bad_options(options, problem):
    with pytest.raises(CommandError) as caught:
        gameoflife(**options)
    assert problem in str(caught.value)


def test_a_pattern_larger_than_the_grid_names_the_file(tmp_path):
    wide = tmp_path / "wide.cells"
    wide.write_text("O" * 9 + "\n")
    with pytest.raises(CommandError, match=rf"{wide}: too many columns in the pattern \(9\) for a 8×8 grid"):
        gameoflife(pattern=str(wide), size=8)


def test_an_unreadable_file(tmp_path):
    with pytest.raises(CommandError, match=rf"{tmp_path}: cannot read the file \(.*Is a directory"):
        gameoflife(pattern=str(tmp_path))
    binary = tmp_path / "binary.cells"
    binary.write_bytes(b"O\xffO\n")
    with pytest.raises(CommandError, match=rf"{binary}: cannot read the file \(.*utf-8"):
        gameoflife(pattern=str(binary))


@pytest.mark.parametrize(("rle", "problem"), [
    ("bo$2bo$3o!", "bad RLE header 'bo$2bo$3o!'"),
    ("x = 3, y = 3\nbo$2bo$3o", "the RLE data does not end with '!'"),
    ("x = 3, y = 3\nbo$2bq$3o!", "unexpected 'q' in the RLE data"),
    ("x = 3, y = 2\nbo$2bo$3o!", "the RLE data goes beyond the header's size x = 3, y = 2"),
])
def test_a_bad_rle_file(tmp_path, rle, problem):
    path = tmp_path / "bad.rle"
    path.write_text(rle)
    with pytest.raises(CommandError) as caught:
        gameoflife(pattern=str(path), size=8)
    assert str(caught.value).startswith(f"{path}: {problem}")


@pytest.mark.parametrize(("processes", "cells"), [(1, 1_048_576), (2, 524_288)])
def test_more_cells_than_a_process_may_open_files(processes, cells):
    with pytest.raises(CommandError, match=rf"--processes {processes}: {cells} cells in one process need "
                                           rf"{cells + 64} open files; a process may open \d+: "
                                           r"use --processes \d+ or more"):
        gameoflife(size=1024, processes=processes)


def test_no_server():
    port = free_port()
    reset = f"ws://127.0.0.1:{port}/ws/gameoflife/reset/"
    with pytest.raises(CommandError, match=f"cannot reach {reset}: connection refused"):
        gameoflife(url=f"ws://127.0.0.1:{port}", steps=1)
