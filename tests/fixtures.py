"""Fixtures shared by every test: real Redis, real uWSGI + nginx, runserver, users, Chromium.

At import, before Django loads, the test process gets its own environment: a Redis port of its
own (the server is started by the ``redis_server`` fixture, so tests can kill it), a fresh SQLite
database (or PostgreSQL with ``TEST_DATABASE=postgres``) shared with the uWSGI and runserver
processes the tests start, and a static root. Then Django is set up and migrated.
"""
from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.stack import ROOT, RedisServer, Stack, can_connect, free_port, private_dir, stop_pid, wait_for

WORK = private_dir("ws4r-test-")
REDIS_PORT = free_port()
ARTIFACTS = ROOT / "artifacts"
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def _postgres_database() -> str:
    """Creates a fresh PostgreSQL database for this run and returns its URL."""
    import psycopg

    name = f"ws4r_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


os.environ["REDIS_URL"] = f"redis://127.0.0.1:{REDIS_PORT}/0"
os.environ["DATABASE_URL"] = (
    _postgres_database() if os.environ.get("TEST_DATABASE") == "postgres" else f"sqlite:///{WORK}/db.sqlite3"
)
os.environ["STATIC_ROOT"] = str(WORK / "static")
os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
os.environ.setdefault("DJANGO_SECRET_KEY", "test-" + uuid.uuid4().hex)
# Test users need no costly password hashing (the servers the tests start inherit this).
os.environ["DJANGO_FAST_PASSWORD_HASHER"] = "1"
# Once the session's Chromium is up, Playwright's sync API keeps an event loop in this thread and
# Django would refuse every later ORM call; the tests' ORM calls are ordinary blocking ones.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

setup_test_environment()
call_command("migrate", interactive=False, verbosity=0)
call_command("collectstatic", interactive=False, verbosity=0)

_redis = RedisServer(REDIS_PORT, WORK / "redis")
(WORK / "redis").mkdir()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives Chromium through Playwright")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "bench: runs the benchmark harness (make bench-check, not make test)")
    config.addinivalue_line("markers", "postgres: needs the PostgreSQL server on 127.0.0.1:5432")
    config.addinivalue_line("markers", "cluster: Redis Cluster, Sentinel, several WebSocket nodes (make test-cluster)")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _redis.stop()
    from django.db import connections

    connections.close_all()
    if os.environ["DATABASE_URL"].startswith("postgres"):
        import psycopg

        name = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
        with psycopg.connect(POSTGRES_ADMIN_URL.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    shutil.rmtree(WORK, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The tests' own redis-server (REDIS_URL of the test process and of every server started)."""
    if _redis.process is None:
        _redis.start()
    yield _redis


@pytest.fixture(autouse=True)
def _redis_running(request: pytest.FixtureRequest) -> None:
    """Every test starts with the tests' Redis up (a test may have stopped it)."""
    if _redis.process is None:
        _redis.start()


@pytest.fixture(scope="session")
def stack(redis_server: RedisServer) -> Iterator[Stack]:
    """Redis + uWSGI (deploy/uwsgi.ini) + nginx (deploy/nginx.conf) on a free port."""
    env = {"WS_WORKERS": "3", "WS_GEVENT": "3000", "DJANGO_WORKERS": "2"}
    with Stack(free_port(), redis_server.url, run_dir=WORK / "run", static_root=WORK / "static",
               env=env, nginx_workers=2) as running:
        _warm_up(running)
        yield running


def _warm_up(stack: Stack) -> None:
    """Waits until every WebSocket worker answers a handshake, so the first test does not pay
    for workers still importing Django on a loaded machine."""
    from ws4redis_server.testing import connect

    def answers() -> bool:
        try:
            with connect(f"{stack.ws_url}/ws/echo/", timeout=30) as ws:
                return ws.recv(timeout=30) == "Hello!"
        except (OSError, TimeoutError):
            return False

    from tests.clients import all_workers

    for _ in range(len(all_workers(stack, "websocket")) * 2):
        wait_for(answers, 60, "the WebSocket instance", stack.run_dir / "uwsgi.log")


class DevServer:
    """``manage.py runserver`` (pages and WebSockets on one port) in a child process."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.http_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        self.log = WORK / f"runserver-{port}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> DevServer:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{self.port}", "--noreload"],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            )
        wait_for(lambda: self.process.poll() is None and can_connect(("127.0.0.1", self.port)), 30,
                 "runserver", self.log)
        return self

    def stop(self) -> None:
        stop_pid(self.process, signal.SIGINT, 10)


@pytest.fixture(scope="session")
def devserver(redis_server: RedisServer) -> Iterator[DevServer]:
    server = DevServer(free_port()).start()
    yield server
    server.stop()


_names = itertools.count(1)


@pytest.fixture
def make_user() -> Any:
    """Returns a factory of saved users with unique names (password "secret" by default)."""
    from django.contrib.auth.models import Group, User

    def make(username: str | None = None, password: str = "secret", groups: tuple[str, ...] = (), **fields: Any) -> Any:
        name = username or f"user{next(_names)}-{uuid.uuid4().hex[:6]}"
        user = User.objects.create_user(name, password=password, **fields)
        for group in groups:
            user.groups.add(Group.objects.get_or_create(name=group)[0])
        return user

    return make


@pytest.fixture
def login_cookie() -> Any:
    from ws4redis_server.testing import login_cookie as cookie

    return cookie


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (its own browser download is not used). Scoped to
    a module: Playwright's sync API keeps an asyncio loop in this thread while it runs, which
    other modules' asyncio.run() (the load clients) cannot share."""
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(executable).exists():
        pytest.fail(f"{executable} is missing: install Debian's chromium (make test does)")
    # Playwright's sync API leaves an event loop running in this thread for the rest of the
    # session, so Django would refuse ORM calls in every later test, browser or not.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def new_page(stack: Stack, browser: Any, login_cookie: Any) -> Iterator[Any]:
    """Returns ``new_page(user=None)``: a page on the stack in a browser context of its own,
    logged in as ``user`` if given. Every dialog a page opens is recorded in ``page.dialogs``."""
    from django.conf import settings

    contexts = []

    def open_(user: Any = None) -> Any:
        context = browser.new_context(base_url=stack.http_url, viewport={"width": 1100, "height": 800})
        contexts.append(context)
        if user is not None:
            context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": login_cookie(user),
                                  "url": stack.http_url}])
        page = context.new_page()
        page.dialogs = []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        return page

    yield open_
    for context in contexts:
        context.close()
