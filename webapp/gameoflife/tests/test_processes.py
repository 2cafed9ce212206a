"""``manage.py gameoflife --processes N``: the cells spread over several processes run the same
generations as in one (each cell still hears its neighbours through the server only), through
nginx and uWSGI; a Ctrl-C stops every process; how the cells are shared and generations merged."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.stack import ROOT, stop_pid
from workers.gameoflife import merge_generations, shares
from workers.patterns import load, place, random_grid

from .reference import generations

GONE_WAIT = 15  # seconds for the cell processes to be gone once the command has exited


def test_shares_cover_every_cell_once_in_order():
    for cells, processes in ((100, 3), (256, 4), (7, 7), (1024, 1), (16_384, 8)):
        parts = shares(cells, processes)
        assert len(parts) == processes
        assert [index for part in parts for index in part] == list(range(cells))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_a_generation_is_complete_once_every_process_has_completed_it():
    completed: list[float] = []
    times = [[1.0, 2.0, 3.0], [1.5]]
    merge_generations(times, completed)
    assert completed == [1.5]
    times[1] += [1.9, 3.5]
    merge_generations(times, completed)
    assert completed == [1.5, 2.0, 3.5]  # the latest process's time, generation by generation
    merge_generations(times, completed)
    assert completed == [1.5, 2.0, 3.5]


@pytest.mark.slow
def test_a_glider_crosses_the_processes_shares(play):
    # 100 cells over 3 processes: 33, 33 and 34 cells, the boundaries in the middle of rows 3 and 6.
    start = place(load("glider"), 10)
    assert play("-s", "10", "-p", "glider", "-n", "4", "--processes", "3") == [
        row[-1:] + row[:-1] for row in start[-1:] + start[:-1]]  # one row down, one right
    # 22 generations: the glider has moved through every share and wrapped around the torus.
    final = play("-s", "10", "-p", "glider", "-n", "22", "--processes", "3")
    assert final == generations(start, 22)
    assert final != start


@pytest.mark.slow
def test_a_blinker_split_between_two_processes(play):
    # 8×8: the first process has rows 0 to 3, the second rows 4 to 7; the blinker is on row 3.
    start = place(load("blinker"), 8)
    assert any(start[3]) and not any(start[4])
    turned = play("-s", "8", "-p", "blinker", "-n", "1", "--processes", "2")
    assert turned == generations(start, 1)
    assert turned != start
    assert any(turned[4])  # the vertical blinker reaches into the second process's rows
    assert play("-s", "8", "-p", "blinker", "-n", "2", "--processes", "2") == start


@pytest.mark.slow
@pytest.mark.parametrize("wrap", [True, False], ids=["torus", "edges"])
def test_random_grids_on_four_processes_match_the_reference(play, wrap):
    options = ["-s", "16", "-n", "24", "--seed", "3", "--processes", "4"] + ([] if wrap else ["-W"])
    final = play(*options)
    assert final == generations(random_grid(16, 3), 24, wrap)
    assert final != random_grid(16, 3)


def cell_processes(parent: int) -> list[int]:
    """Returns the ids of the processes ``parent`` started with multiprocessing's spawn."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            spawned = b"spawn_main" in (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and spawned:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.slow
def test_ctrl_c_stops_every_cell_process_with_a_summary(stack):
    command = [sys.executable, str(ROOT / "manage.py"), "gameoflife", "--url", stack.ws_url,
               "-s", "16", "-l", "5", "--processes", "2"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    try:
        lines = []
        for line in process.stdout:  # bounded: the command fails within its own timeouts
            lines.append(line)
            if "running" in line:
                break
        assert "from 2 processes" in lines[0], "".join(lines)
        children = cell_processes(process.pid)
        assert len(children) == 2
        for line in process.stdout:  # some generations at 5 a second: the summary counts them
            lines.append(line)
            if "generation" in line:
                break
        process.send_signal(signal.SIGINT)
        process.wait(60)  # a few lines to come: they fit in the pipe
        out = process.stdout.read()
    finally:
        stop_pid(process, signal.SIGKILL)
    assert process.returncode == 130, "".join(lines) + out
    assert "Traceback" not in out
    *_, summary, error = out.strip().splitlines()
    assert summary.startswith("Run ") and " generations in " in summary, out
    assert error == "CommandError: Stopped: the cells are disconnected."
    deadline = time.monotonic() + GONE_WAIT
    while any(map(alive, children)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(alive, children))
