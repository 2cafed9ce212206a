"""``manage.py testecho`` stopped with Ctrl-C, as from a terminal: a partial summary, no traceback,
a non-zero status."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from deploy.stack import ROOT
from tests.terminal import Terminal

pytestmark = pytest.mark.slow


def test_ctrl_c_prints_the_partial_summary_and_exits_130(stack, tmp_path: Path) -> None:
    report = tmp_path / "echo.json"
    # Clients connect within 2 × 3 s and finish 3 × 3 s later: all are connected, none done.
    with Terminal(sys.executable, str(ROOT / "manage.py"), "testecho", "--url", stack.ws_url, "--clients", "40",
                  "--delay", "3", "--processes", "2", "--json", str(report)) as command:
        command.wait_for_line("All 40 clients are connected", 60)
        command.ctrl_c()
        status = command.finish(60)
    output = command.output
    assert status == 130, output
    assert "Interrupted: closing the clients" in output
    assert f"Summary: 0 of 40 clients saw the exact transcript ({stack.ws_url}/ws/echo/" in output
    assert "interrupted after" in output and "40 clients had not finished" in output
    assert "CommandError: Interrupted: 0 of 40 clients had finished the transcript." in output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    saved = json.loads(report.read_text())
    assert saved["interrupted"] is True and saved["ok"] is False
    assert saved["unfinished"] == 40 and saved["peak_connections"] == 40
