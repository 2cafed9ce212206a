"""Set-up of the library's tests: a private directory, a redis-server of their own on a free port
(started by the ``redis_server`` fixture, so tests may stop it), then Django on library_settings
with a migrated SQLite database that child servers share."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

WORK = Path(tempfile.mkdtemp(prefix="ws4r-lib-"))
WORK.chmod(0o755)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


REDIS_PORT = _free_port()
os.environ["WS4R_LIBRARY_TEST_DIR"] = str(WORK)
os.environ["REDIS_URL"] = f"redis://127.0.0.1:{REDIS_PORT}/0"
os.environ["DJANGO_SETTINGS_MODULE"] = "library_settings"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

call_command("migrate", interactive=False, verbosity=0)


class _Redis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(WORK)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


_redis = _Redis(REDIS_PORT)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[_Redis]:
    """The tests' own redis-server at REDIS_URL."""
    if _redis.process is None:
        _redis.start()
    yield _redis


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _redis.stop()
    shutil.rmtree(WORK, ignore_errors=True)
