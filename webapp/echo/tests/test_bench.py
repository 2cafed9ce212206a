"""The benchmark harness works end to end on a tiny N: every target holds its sockets, every
broadcast reaches every socket, the files are written, and every process it started is gone when
it ends. No figure is judged: timings vary."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.__main__ import parse_args
from deploy.stack import ROOT

SOCKETS = 50
# The run's time limit; past it the benchmark gets SIGTERM and STOP_GRACE s to stop what it started.
RUN_LIMIT = 240
STOP_GRACE = 50


def _group_members(group: int) -> list[str]:
    """Returns "pid name" for every process left in process group ``group``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
        except OSError:
            continue
        name, fields = rest.rsplit(") ", 1)
        if int(fields.split()[2]) == group:
            members.append(f"{pid} {name}")
    return members


def _run_bench(argv: list[str]) -> tuple[int | None, str, list[str]]:
    """Runs ``python -m bench`` in a process group of its own; returns its exit status (None if
    it overran RUN_LIMIT), its output and the processes it left behind (killed here)."""
    process = subprocess.Popen([sys.executable, "-m", "bench", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=RUN_LIMIT)
        status: int | None = process.returncode
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        status = None
    deadline = time.monotonic() + 10  # servers' children may outlive their parent by a moment
    while (left := _group_members(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        os.killpg(process.pid, signal.SIGKILL)
    return status, output, left


@pytest.mark.bench
def test_one_small_run_of_every_target(stack, redis_server, tmp_path: Path) -> None:
    status, output, left = _run_bench(
        ["--sizes", str(SOCKETS), "--hold", "0", "--targets", "ws4redis,channels,channels-pubsub,external",
         "--url", stack.ws_url, "--redis-url", redis_server.url, "--out", str(tmp_path)])
    assert status is not None, f"still running after {RUN_LIMIT} s:\n{output}"
    assert status == 0, output
    assert not left, f"processes left running: {left}"

    (result_file,) = tmp_path.glob("bench-*.json")
    run = json.loads(result_file.read_text())
    assert run["machine"]["cores"] >= 1 and "nginx" in run["machine"]
    assert [row["target"] for row in run["results"]] == ["ws4redis", "channels", "channels-pubsub", "external"]
    for row in run["results"]:
        assert "error" not in row, row
        assert row["connect"]["opened"] == row["held"] == SOCKETS, row["connect"]
        assert [b["delivered"] for b in row["broadcasts"]] == [SOCKETS] * 3
        assert row["burst"]["delivered"] == row["burst"]["expected"] == 10 * SOCKETS
        assert row["burst"]["last_ms"] > 0 and row["burst"]["deliveries_per_s"] > 0
        assert row["echo"]["completed"] == row["echo"]["clients"] == 100
    for row in run["results"][:3]:
        assert set(row["memory"]["kib_per_socket"]) == {"server", "nginx", "redis"}
        assert row["memory"]["loaded_kib"]["server"]["rss_kib"] > 0
    assert run["results"][3]["memory"]["kib_per_socket"] == {}

    table = (tmp_path / "latest.md").read_text()
    assert "| ws4redis | 50 | 50 |" in table and "| channels | 50 | 50 |" in table
    assert "- N=50: ws4redis vs channels:" in table and "- N=50: ws4redis vs channels-pubsub:" in table
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, message", [
    (["--sizes", "0"], "socket counts must be between 1 and 100,000"),
    (["--sizes", "200000"], "socket counts must be between 1 and 100,000"),
    (["--sizes", "ten"], "expected socket counts like 1000,10000"),
    (["--targets", "tornado"], "unknown target(s) ['tornado']: choose among ws4redis, channels, channels-pubsub"),
    (["--targets", "external"], "--targets external needs --url"),
    (["--hold", "-1"], "--hold must be >= 0"),
    (["--peer-max", "0"], "--peer-max must be >= 1"),
])
def test_bad_arguments_exit_with_a_message(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_an_unknown_suite_exits_with_a_message() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "no_such_suite"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert "no suite named 'no_such_suite'" in done.stderr
