"""A live server for tests: the project's pages, static files, handlers and facilities on a
loopback port, served by a child process, and a TransactionTestCase around it.

The child (:mod:`ws4redis_server.testing.server`) runs the development transport (gevent.pywsgi
and wsproto, as ``manage.py runserver``) with gevent's monkey patching, which the test process
must not get. It loads the test process's settings module, switched to the databases the test
process uses now (the test databases once the test runner has made them), plus the overrides
given to :class:`LiveServer`. So:

- the databases must be files or servers the child can open: an in-memory SQLite database is
  refused (set ``DATABASES["default"]["TEST"]["NAME"]`` to a file name);
- the session store must be shared: the database, files, signed cookies or a shared cache (a
  cache session store on a local-memory cache is refused);
- Redis is the one the settings name (``WS4REDIS_CONNECTION``), in both processes;
- settings changed at run time in the test process (``override_settings``) do not reach the
  child: pass them as ``LiveServer(settings=...)`` or ``live_server_settings``.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from types import TracebackType
from typing import Any, ClassVar

from django.conf import ENVIRONMENT_VARIABLE
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.test import TransactionTestCase
from django.utils.functional import classproperty
from websockets.sync.client import ClientConnection

from .client import connect

# What the child reads and prints (see ws4redis_server/testing/server.py, which imports gevent).
ENVIRON = "WS4REDIS_LIVE_SERVER"
READY = "ws4redis-live-server port "
HOST = "127.0.0.1"
COMMAND = "from gevent import monkey; monkey.patch_all(); from ws4redis_server.testing.server import main; main()"
LOCAL_CACHES = ("django.core.cache.backends.locmem.LocMemCache", "django.core.cache.backends.dummy.DummyCache")


def settings_module() -> str | None:
    """The settings module's name (under override_settings too), None after settings.configure()."""
    return django_settings.SETTINGS_MODULE or os.environ.get(ENVIRONMENT_VARIABLE)


def check_shareable() -> None:
    """Raises ImproperlyConfigured, naming the setting to change, if a child process could not
    share the test process's databases, session store or settings."""
    if not settings_module():
        raise ImproperlyConfigured("The WebSocket live server runs in a child process that loads the settings "
                                   "from a module: set DJANGO_SETTINGS_MODULE (settings.configure() is not passed on)")
    for connection in connections.all():
        if connection.vendor == "sqlite" and connection.is_in_memory_db():
            raise ImproperlyConfigured(
                f"The WebSocket live server runs in a child process, which cannot open the in-memory SQLite "
                f'database of {connection.alias!r}: set DATABASES["{connection.alias}"]["TEST"]["NAME"] '
                'to a file name (e.g. "test-db.sqlite3")')
    if django_settings.SESSION_ENGINE == "django.contrib.sessions.backends.cache":
        alias = django_settings.SESSION_CACHE_ALIAS
        if django_settings.CACHES[alias]["BACKEND"] in LOCAL_CACHES:
            raise ImproperlyConfigured(
                f"The WebSocket live server runs in a child process, which cannot read sessions kept in the "
                f"local-memory cache {alias!r}: use a shared cache in CACHES[{alias!r}] or another SESSION_ENGINE "
                f"(e.g. \"django.contrib.sessions.backends.db\")")


class LiveServer:
    """The project served on 127.0.0.1 by a child process (see the module's docstring).
    ``settings`` (JSON values) are applied over the settings module in the child. Use it as a
    context manager, or call :meth:`start` and :meth:`stop`."""

    def __init__(self, settings: dict[str, Any] | None = None, startup_timeout: float = 30) -> None:
        self.settings = dict(settings or {})
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self._clients: list[ClientConnection] = []

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:<port>``, without a trailing slash."""
        return f"http://{HOST}:{self._listening_port()}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:<port>``, without a trailing slash."""
        return f"ws://{HOST}:{self._listening_port()}"

    def start(self) -> LiveServer:
        """Starts the child and returns once it listens. Raises ImproperlyConfigured if it could
        not share the test process's databases or sessions, RuntimeError if it exits or does not
        listen within ``startup_timeout`` seconds (its error is on stderr)."""
        check_shareable()
        self.process = subprocess.Popen([sys.executable, "-c", COMMAND], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env=self._environ())
        try:
            self.port = self._read_port()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Closes the sockets opened with :meth:`connect`, then stops the child by its PID
        (SIGTERM; SIGKILL if it outlives 10 s)."""
        self.close_clients()
        process, self.process, self.port = self.process, None, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()

    def connect(self, path: str, user: Any = None, **kwargs: Any) -> ClientConnection:
        """Opens a WebSocket to ``path`` (e.g. ``"/ws/news?subscribe-user"``) as ``user``, or
        anonymous; takes :func:`~ws4redis_server.testing.connect`'s keyword arguments. Returns
        once the socket's subscriptions are confirmed. :meth:`close_clients` closes it."""
        ws = connect(self.ws_url + path, user, **kwargs)
        self._clients.append(ws)
        return ws

    def close_clients(self) -> None:
        """Closes every socket opened with :meth:`connect` (closing one twice is harmless)."""
        clients, self._clients = self._clients, []
        for ws in clients:
            ws.close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def _listening_port(self) -> int:
        if self.port is None:
            raise RuntimeError("the live server is not running: call start() first")
        return self.port

    def _environ(self) -> dict[str, str]:
        databases = {connection.alias: str(connection.settings_dict["NAME"]) for connection in connections.all()}
        # The test process's own import path (its project and test directories), for the
        # settings module and what it names; the interpreter's own directories come by themselves.
        own = (sys.prefix, sys.base_prefix, sys.exec_prefix)
        path = [entry or os.getcwd() for entry in sys.path if not entry.startswith(own)]
        return {
            **os.environ,
            ENVIRONMENT_VARIABLE: str(settings_module()),
            "PYTHONPATH": os.pathsep.join(path),
            ENVIRON: json.dumps({"databases": databases, "settings": self.settings}),
        }

    def _read_port(self) -> int:
        assert self.process is not None and self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + self.startup_timeout
        output = b""
        while True:
            for line in output.decode(errors="replace").splitlines(keepends=True):
                if line.startswith(READY) and line.endswith("\n"):
                    return int(line[len(READY):])
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"the WebSocket live server did not listen within {self.startup_timeout:g}s")
            readable, _, _ = select.select([fd], [], [], remaining)
            if readable:
                chunk = os.read(fd, 4096)
                if not chunk:
                    code = self.process.wait(10)
                    raise RuntimeError(f"the WebSocket live server exited with code {code} before it listened "
                                       "(its error is on stderr)")
                output += chunk


class WebSocketLiveServerTestCase(TransactionTestCase):
    """A TransactionTestCase with the project served live for the whole class: pages, static
    files, ``@websocket`` handlers and pub/sub facilities (see :mod:`ws4redis_server.testing.live`
    for what the test process must share with it). Data a test saves is committed, so the server
    sees it; it is flushed after each test.

    ``live_server_url`` and ``ws_url`` are the server's addresses; :meth:`connect` opens a socket
    as a user. ``live_server_settings`` (JSON values) are applied in the server's process."""

    live_server_settings: ClassVar[dict[str, Any]] = {}
    live_server: ClassVar[LiveServer]

    @classproperty
    def live_server_url(cls) -> str:
        return cls.live_server.http_url

    @classproperty
    def ws_url(cls) -> str:
        return cls.live_server.ws_url

    @classmethod
    def setUpClass(cls) -> None:
        check_shareable()
        super().setUpClass()
        cls.live_server = LiveServer(cls.live_server_settings)
        cls.addClassCleanup(cls.live_server.stop)
        cls.live_server.start()

    def connect(self, path: str, user: Any = None, **kwargs: Any) -> ClientConnection:
        """Opens a WebSocket to ``path`` on the live server as ``user`` (logged in for the
        occasion), or anonymous; it is closed at the end of the test. Returns once the socket's
        subscriptions are confirmed: a message published afterwards reaches it."""
        ws = self.live_server.connect(path, user, **kwargs)
        self.addCleanup(ws.close)
        return ws
