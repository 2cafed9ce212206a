"""The chat's model and view tests again, on PostgreSQL (the rest of the run uses SQLite).

The fixtures create a fresh PostgreSQL database for a run with TEST_DATABASE=postgres and drop it
afterwards; this test starts such a run for the tests that exercise the chat's queries.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.stack import ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
ON_POSTGRES = [HERE / "test_models.py", HERE / "test_views.py", HERE / "test_security.py",
               ROOT / "webapp" / "accounts" / "tests"]


def test_model_and_view_tests_pass_on_postgresql() -> None:
    if os.environ.get("TEST_DATABASE") == "postgres":
        pytest.skip("this whole run is on PostgreSQL already")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *map(str, ON_POSTGRES)],
        cwd=ROOT, env={**os.environ, "TEST_DATABASE": "postgres"}, capture_output=True, text=True, timeout=600,
    )
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0, f"{summary}\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
    assert " passed" in summary and "failed" not in summary and "error" not in summary
