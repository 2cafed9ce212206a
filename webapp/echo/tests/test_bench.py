"""The benchmark harness works end to end on a tiny N: every target holds its sockets, every
broadcast reaches every socket, the files are written. No figure is judged: timings vary."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import parse_args
from deploy.stack import ROOT

SOCKETS = 50


@pytest.mark.bench
def test_one_small_run_of_every_target(stack, redis_server, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--sizes", str(SOCKETS), "--hold", "0",
         "--targets", "ws4redis,channels,channels-pubsub,external",
         "--url", stack.ws_url, "--redis-url", redis_server.url, "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

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
