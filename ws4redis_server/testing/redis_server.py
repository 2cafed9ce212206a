"""A redis-server of a test's own, on a free loopback port, with nothing kept on disk: for tests
that stop or restart Redis, or that want it empty.

    with RedisServer() as redis_server:
        os.environ["REDIS_URL"] = redis_server.url
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis


def free_port() -> int:
    """Returns a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server on 127.0.0.1:``port`` (a free one by default), run from ``binary`` (found on
    PATH by default) in ``workdir`` (a temporary directory, removed at :meth:`stop`, by default).
    ``args`` are added to its command line, e.g. ``["--maxclients", "10000"]``."""

    def __init__(self, port: int | None = None, workdir: Path | None = None, binary: str | None = None,
                 args: list[str] | None = None, timeout: float = 10) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.own_workdir = workdir is None
        self.binary = binary
        self.args = list(args or [])
        self.timeout = timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path | None:
        """redis-server's log file (None before the first start)."""
        return None if self.workdir is None else self.workdir / "redis.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> redis.Redis:
        """A redis-py client of this server."""
        return redis.Redis.from_url(self.url)

    def start(self) -> RedisServer:
        """Starts redis-server and returns once it answers PING. Raises RuntimeError if the binary
        is missing or the server does not answer within ``timeout`` seconds (its log's last lines
        in the message)."""
        binary = self.binary or shutil.which("redis-server")
        if binary is None or not Path(binary).exists():
            raise RuntimeError(f"redis-server not found ({self.binary or 'not on PATH'}): install Redis "
                               "(Debian: apt-get install redis-server) or pass RedisServer(binary=...)")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="ws4redis-redis-"))
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--logfile", str(self.log), *self.args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        if self._answers_within(self.timeout):
            return self
        code = self.process.poll()
        self._end(kill=True)
        ended = f"it exited with code {code}" if code is not None else f"no answer within {self.timeout:g}s"
        raise RuntimeError(f"redis-server on port {self.port} did not start ({ended}){self._log_tail()}")

    def stop(self) -> None:
        """Stops the server (SIGTERM, by its PID) and removes the directory it made for itself."""
        self._end(kill=False)
        if self.own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def kill(self) -> None:
        """Kills the server at once (SIGKILL), as a crash would; :meth:`start` may follow."""
        self._end(kill=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def _answers_within(self, timeout: float) -> bool:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1, socket_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and self.running:
                try:
                    if client.ping():
                        return True
                except redis.RedisError:
                    time.sleep(0.05)
            return False
        finally:
            client.close()

    def _end(self, kill: bool) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def _log_tail(self, lines: int = 20) -> str:
        log = self.log
        if log is None or not log.exists():
            return ""
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        return f"\n--- last lines of {log} ---\n{tail}"
