"""Set-up of the library's tests: a private directory, a redis-server of their own on a free port
(started by the ``redis_server`` fixture, so tests may stop it), then Django on library_settings
with a migrated SQLite database that child servers share."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ws4redis_server.testing import RedisServer

WORK = Path(tempfile.mkdtemp(prefix="ws4r-lib-"))
WORK.chmod(0o755)
_redis = RedisServer(workdir=WORK)  # on a free port; started by the redis_server fixture
os.environ["WS4R_LIBRARY_TEST_DIR"] = str(WORK)
os.environ["REDIS_URL"] = _redis.url
os.environ["DJANGO_SETTINGS_MODULE"] = "library_settings"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

call_command("migrate", interactive=False, verbosity=0)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The tests' own redis-server at REDIS_URL."""
    if not _redis.running:
        _redis.start()
    yield _redis


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _redis.stop()
    shutil.rmtree(WORK, ignore_errors=True)
