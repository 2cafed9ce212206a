"""Runs of ``manage.py gameoflife`` against the test stack, as a user would start them."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deploy.stack import ROOT
from workers.patterns import Grid, parse_plaintext

RUN_TIMEOUT = 240  # seconds a test run may take, start-up included


@pytest.fixture
def play(stack: Any, tmp_path: Path) -> Any:
    """Returns ``play(*options) -> Grid``: runs ``manage.py gameoflife`` with ``options`` (plus
    --url of the stack, --speed 0 unless given, and --output) and returns the final grid."""
    runs = iter(range(1, 1000))

    def run(*options: str) -> Grid:
        output = tmp_path / f"final-{next(runs)}.cells"
        speed = () if "-l" in options or "--speed" in options else ("--speed", "0")
        command = [sys.executable, str(ROOT / "manage.py"), "gameoflife", "--url", stack.ws_url,
                   *speed, *options, "--output", str(output)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        assert done.returncode == 0, f"{' '.join(command[2:])} failed:\n{done.stdout}{done.stderr}"
        return parse_plaintext(output.read_text())

    return run
