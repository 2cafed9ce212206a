"""Runs the whole stack from the deployment files: Redis (when none answers at REDIS_URL),
uWSGI from deploy/uwsgi.ini (Django + WebSocket instances) and nginx from deploy/nginx.conf.

    python -m deploy.stack run [--port 8000] [--max-sockets N]   # what `make run` does;
                                                                 # Ctrl-C stops everything

It refuses to start when the port is taken or the run directory (run/) belongs to a stack still
running (deploy/running.py), and records the site it serves in run/stack.json for the demo
commands. Its workers and file limits hold ``--max-sockets`` open WebSockets (default:
WS_MAX_SOCKETS, else 200,000; deploy/sizing.py); WS_WORKERS / WS_GEVENT in the environment win.

The tests and the benchmarks use :class:`Stack` and :class:`RedisServer` the same way.
Every process started here is stopped by its PID.
"""
from __future__ import annotations

import argparse
import atexit
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from deploy import running
from deploy.sizing import Sizing, nginx_at_most, plan
from ws4redis_server.testing.redis_server import RedisServer as LibraryRedisServer
from ws4redis_server.testing.redis_server import free_port as free_port

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
PAGES = ["/", "/echo/", "/gameoflife/", "/chat/", "/pubsub/", "/admin/"]
# The peak `make run` is sized for unless WS_MAX_SOCKETS says otherwise; a Stack started by a test
# or a benchmark is sized for STACK_SOCKETS unless it asks for more (max_sockets=).
RUN_SOCKETS = 200_000
STACK_SOCKETS = 4_000
# uWSGI settings the environment may set by hand, overriding what the sizing derives.
SIZING_OVERRIDES = ("WS_WORKERS", "WS_GEVENT")


def wait_for(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    """Polls ``check`` until it is true; raises RuntimeError naming ``what`` (and the log's
    last lines) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    tail = ""
    if log is not None and log.exists():
        lines = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        tail = f"\n--- last lines of {log} ---\n{lines}"
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s{tail}")


def can_connect(address: str | tuple[str, int]) -> bool:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(address)
        except OSError:
            return False
    return True


def stop_pid(process: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Sends ``sig`` to ``process`` and waits; kills it if it outlives ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def private_dir(prefix: str) -> Path:
    """Returns a new directory that nginx's unprivileged workers may traverse."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


# Directories made by private_dir for a server that has been stopped: removed when this process
# exits (not at once: a test or benchmark may still read the logs in them).
_stopped_dirs: set[Path] = set()
atexit.register(lambda: [shutil.rmtree(path, ignore_errors=True) for path in _stopped_dirs])


class RedisServer(LibraryRedisServer):
    """The library's test redis-server with the stack's settings: up to 10,000 clients, and a
    directory of its own that outlives :meth:`stop` until this process exits (tests and
    benchmarks may still read its log)."""

    def __init__(self, port: int | None = None, workdir: Path | None = None) -> None:
        super().__init__(port, workdir or private_dir("ws4r-redis-"), args=["--maxclients", "10000"])
        self.own_dir = workdir is None

    def start(self) -> RedisServer:
        _stopped_dirs.discard(self.workdir)
        super().start()
        return self

    def stop(self) -> None:
        super().stop()
        self._forget_dir()

    def kill(self) -> None:
        """Kills the server at once (SIGKILL), as a crash would."""
        super().kill()
        self._forget_dir()

    def _forget_dir(self) -> None:
        if self.own_dir and self.workdir is not None:
            _stopped_dirs.add(self.workdir)


def upstream_servers(sockets: list[Path], options: str = "") -> str:
    """nginx.conf's ``${WS_SERVERS}``: one ``server`` line per WebSocket worker's socket."""
    return "\n        ".join(f"server unix:{path}{options};" for path in sockets)


class Stack:
    """uWSGI (both instances) and nginx on 127.0.0.1:``port``, talking to Redis at ``redis_url``,
    sized for ``max_sockets`` open WebSockets under a per-process limit of ``nofile`` files
    (default: the hard RLIMIT_NOFILE, see deploy/sizing.py). ``env``'s WS_WORKERS / WS_GEVENT and
    ``nginx_workers`` override the derived counts."""

    # nginx leaves a refused server out for a while (max_fails); the workers of one instance stop
    # and start together, so that would only delay the handshakes after a restart.
    upstream_options = " max_fails=0"

    def __init__(self, port: int, redis_url: str, run_dir: Path | None = None,
                 static_root: Path | None = None, env: dict[str, str] | None = None,
                 nginx_workers: int | None = None, max_sockets: int = STACK_SOCKETS,
                 nofile: int | None = None) -> None:
        self.port = port
        self.redis_url = redis_url
        self.own_run_dir = run_dir is None
        self.run_dir = run_dir or private_dir("ws4r-run-")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o755)
        self.static_root = static_root or Path(os.environ.get("STATIC_ROOT", ROOT / "staticfiles"))
        self.sizing = plan(max_sockets, nofile)
        # The effective WS_WORKERS / WS_GEVENT are in extra_env, derived or given.
        self.extra_env = {**self.instance_sizing().env(), **(env or {})}
        self.nginx_workers = nginx_workers or self.sizing.nginx_workers
        self.uwsgi: subprocess.Popen | None = None
        self.nginx: subprocess.Popen | None = None

    def instance_sizing(self) -> Sizing:
        """The sizing of one WebSocket instance (all of the peak here)."""
        return self.sizing

    @property
    def ws_workers(self) -> int:
        """WebSocket workers per instance."""
        return int(self.extra_env["WS_WORKERS"])

    def ws_sockets(self) -> list[Path]:
        """The WebSocket workers' sockets (ws-<w>.sock), nginx's upstream."""
        return [self.run_dir / f"ws-{worker}.sock" for worker in range(1, self.ws_workers + 1)]

    def nginx_sizing(self) -> dict[str, str]:
        """nginx.conf's sizing placeholders: the plan's, or for a worker count given by hand, as
        many connections per worker as the file limit allows."""
        if self.nginx_workers == self.sizing.nginx_workers:
            return self.sizing.nginx()
        return nginx_at_most(self.nginx_workers, self.sizing.nofile)

    def banner(self) -> str:
        """What the stack is sized for, and by what."""
        derived = self.instance_sizing().env()
        given = [f"{name}={self.extra_env[name]}" for name in SIZING_OVERRIDES if self.extra_env[name] != derived[name]]
        return self.sizing.summary() + (f" ({', '.join(given)} set by hand)" if given else "")

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "REDIS_URL": self.redis_url,
            "WS4R_RUN_DIR": str(self.run_dir),
            "STATIC_ROOT": str(self.static_root),
            "VIRTUAL_ENV": sys.prefix,
            "DJANGO_SETTINGS_MODULE": env.get("DJANGO_SETTINGS_MODULE", "webapp.settings"),
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        return env

    def render_nginx(self) -> Path:
        """Writes deploy/nginx.conf with this stack's paths and port into the run directory; the
        template's note on its placeholders gives way to a line naming the template."""
        text = _without_placeholder_note((DEPLOY / "nginx.conf").read_text())
        values = {"RUN_DIR": self.run_dir, "DEPLOY_DIR": DEPLOY, "PORT": self.port, "STATIC_ROOT": self.static_root,
                  **self.nginx_sizing(),
                  "WS_SERVERS": upstream_servers(self.ws_sockets(), self.upstream_options)}
        for name, value in values.items():
            text = text.replace(f"${{{name}}}", str(value))
        path = self.run_dir / "nginx.conf"
        path.write_text(f"# Rendered by deploy/stack.py from {DEPLOY / 'nginx.conf'}: edit that file, not this one.\n"
                        + text)
        return path

    def start(self) -> Stack:
        _stopped_dirs.discard(self.run_dir)
        self.start_uwsgi()
        self.start_nginx()
        return self

    def start_uwsgi(self) -> None:
        log = self.run_dir / "uwsgi.log"
        with open(log, "ab") as out:
            self.uwsgi = subprocess.Popen([str(BIN / "uwsgi"), "--ini", str(DEPLOY / "uwsgi.ini")],
                                          cwd=ROOT, env=self.environ(), stdout=out, stderr=subprocess.STDOUT)
        for path in [self.run_dir / "django.sock", *self.ws_sockets()]:
            wait_for(lambda path=path: self.uwsgi.poll() is None and can_connect(str(path)), 60,
                     f"uWSGI {path.name}", log)

    def start_nginx(self) -> None:
        conf = self.render_nginx()
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        log = self.run_dir / "nginx-error.log"
        with open(self.run_dir / "nginx.log", "ab") as out:
            self.nginx = subprocess.Popen([binary, "-p", str(self.run_dir), "-c", str(conf), "-g", "daemon off;"],
                                          stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: self.nginx.poll() is None and can_connect(("127.0.0.1", self.port)), 20, "nginx", log)

    def pid_of(self, instance: str) -> int:
        """Returns the master PID of ``instance`` ("django" or "websocket")."""
        return int((self.run_dir / f"{instance}.pid").read_text().strip())

    def worker_pids(self, instance: str) -> list[int]:
        """The worker PIDs of ``instance``: its master's children that run uWSGI (not the shell
        that wrote the WebSocket instance's socket lines, until the master reaps it)."""
        master = self.pid_of(instance)
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        command = Path(f"/proc/{master}/cmdline").read_bytes()
        return [int(pid) for pid in children if _cmdline(int(pid)) == command]

    def reload(self, instance: str) -> None:
        """Gracefully reloads one instance (SIGHUP to its master, as ``uwsgi --reload``); the other
        is untouched. The WebSocket instance closes its sockets with 1001 first."""
        os.kill(self.pid_of(instance), signal.SIGHUP)

    def stop_instance(self, instance: str) -> None:
        """Stops one instance as ``uwsgi --stop <pidfile>`` would (SIGINT to its master); the
        emperor starts it again. The WebSocket instance closes its sockets with 1001 first."""
        os.kill(self.pid_of(instance), signal.SIGINT)

    def stop(self) -> None:
        """Stops uWSGI, then nginx: the WebSocket instance's 1001 close frames still pass through
        nginx, and nginx then has no upgraded connection left to wait for."""
        try:
            stop_pid(self.uwsgi, signal.SIGTERM, 30)
        finally:
            stop_pid(self.nginx, signal.SIGQUIT, 10)
            self.nginx = self.uwsgi = None
            if self.own_run_dir:
                _stopped_dirs.add(self.run_dir)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone meanwhile
        return None


def _without_placeholder_note(text: str) -> str:
    """Returns nginx.conf's text without the paragraphs of its opening comment that speak of
    ``${...}`` placeholders: in a rendered file they are filled in."""
    lines = text.splitlines(keepends=True)
    header = list(itertools.takewhile(lambda line: line.startswith("#"), lines))
    paragraphs: list[list[str]] = [[]]
    for line in header:
        paragraphs[-1].append(line)
        if line.strip() == "#":
            paragraphs.append([])
    kept = [paragraph for paragraph in paragraphs if not any("${" in line for line in paragraph)]
    return "".join(itertools.chain(*kept, lines[len(header):]))


class StepFailed(Exception):
    """A step of ``run`` failed; the message says what and where its log is."""


class Steps:
    """Prints numbered steps with their durations, one line each: ``[2/5] Migrating ... 1.3 s``."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.number = 0

    @contextmanager
    def __call__(self, what: str) -> Iterator[None]:
        self.number += 1
        print(f"[{self.number}/{self.total}] {what} ...", end=" ", flush=True)
        started = time.monotonic()
        try:
            yield
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            raise
        except BaseException:
            print("failed", flush=True)
            raise
        print(f"{time.monotonic() - started:.1f} s", flush=True)


def manage(*args: str, env: dict[str, str] | None = None, log: Path | None = None) -> None:
    """Runs ``manage.py *args``; with ``log``, its output goes there and a failure raises
    StepFailed with the log's last lines."""
    command = [sys.executable, str(ROOT / "manage.py"), *args]
    if log is None:
        subprocess.run(command, cwd=ROOT, env=env, check=True)
        return
    with open(log, "ab") as out:
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise StepFailed(f"manage.py {args[0]} exited with {done.returncode}\n{_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    text = "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return f"--- last lines of {log} ---\n{text}"


def _page_answers(url: str) -> bool:
    """True once ``url`` answers without a server error (Django has loaded behind nginx)."""
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def run(port: int, run_dir: Path = ROOT / "run", redis: str = "single", nodes: int = 1,
        max_sockets: int = RUN_SOCKETS) -> int:
    """Sets up and serves the site until Ctrl-C or SIGTERM, then stops what it started. Prints
    one line per step; returns the exit status (1: refused, a step failed or a server died).
    Workers and file limits hold ``max_sockets`` WebSockets (deploy/sizing.py).
    ``redis="cluster"`` starts a local Redis Cluster (3 primaries + 3 replicas, deploy/redis_ha.py)
    instead of using REDIS_URL; ``nodes`` > 1 runs that many WebSocket nodes (deploy/nodes.py)."""
    from deploy.nodes import NodesStack
    from deploy.redis_ha import RedisClusterSet

    problem = running.refusal(port, run_dir)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    setup_log = run_dir / "setup.log"
    own_cluster = RedisClusterSet(workdir=run_dir / "redis-cluster") if redis == "cluster" else None
    redis_url = own_cluster.url if own_cluster else os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    static_root = Path(os.environ.get("STATIC_ROOT", ROOT / "staticfiles"))
    env = dict(os.environ, REDIS_URL=redis_url, STATIC_ROOT=str(static_root))
    overrides = {name: os.environ[name] for name in SIZING_OVERRIDES if name in os.environ}
    try:
        stack = (NodesStack(port, redis_url, nodes, run_dir=run_dir, static_root=static_root, env=overrides,
                            max_sockets=max_sockets) if nodes > 1
                 else Stack(port, redis_url, run_dir=run_dir, static_root=static_root, env=overrides,
                            max_sockets=max_sockets))
    except ValueError as exc:
        print(f"Cannot size the site for {max_sockets:,} WebSockets: {exc}", file=sys.stderr)
        return 1
    own_redis: RedisServer | None = None
    steps = Steps(5)
    # SIGTERM stops it as Ctrl-C does, whichever step it is in.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    status = 0
    try:
        parsed = urlparse(redis_url)
        if own_cluster is not None:
            with steps(f"Redis: starting a Redis Cluster, 3 primaries + 3 replicas ({redis_url})"):
                own_cluster.start()
        elif redis_answers(redis_url):
            with steps(f"Redis: using the one at {redis_url}"):
                pass
        elif parsed.hostname not in ("127.0.0.1", "localhost"):
            print(f"No Redis answers at {redis_url}; start it or set REDIS_URL.", file=sys.stderr)
            return 1
        else:
            with steps(f"Redis: none at {redis_url}, starting redis-server on port {parsed.port or 6379}"):
                own_redis = RedisServer(parsed.port or 6379, private_dir("ws4r-redis-")).start()
        with steps(f"Migrating the database (log: {running.relative(setup_log)})"):
            manage("migrate", "--noinput", "-v", "1", env=env, log=setup_log)
        with steps(f"Collecting static files into {running.relative(static_root)}"):
            manage("collectstatic", "--noinput", "-v", "1", env=env, log=setup_log)
        uwsgi_log = running.relative(run_dir / "uwsgi.log")
        instances = f"{nodes} WebSocket nodes" if nodes > 1 else "WebSocket instances"
        with steps(f"Starting uWSGI: Django and {instances} (log: {uwsgi_log})"):
            stack.start_uwsgi()
        with steps(f"Starting nginx on 127.0.0.1:{port}; waiting for the home page"):
            stack.start_nginx()
            wait_for(lambda: _page_answers(f"{stack.http_url}/"), 60, "The home page", run_dir / "uwsgi.log")
        running.record_site(run_dir, port)
        print(f"\nServing on {stack.http_url}/  (logs in {running.relative(run_dir)}/; Ctrl-C stops everything)")
        print(f"Capacity: {stack.banner()} (WS_MAX_SOCKETS=<peak> make run for another)\n")
        for page in PAGES:
            print(f"  {stack.http_url}{page}")
        print(f"  WebSockets: {stack.ws_url}/ws/<facility>?subscribe-broadcast  and  {stack.ws_url}/ws/echo/")
        print(f"\nDemos from the checkout: .venv/bin/python manage.py gameoflife  (or testecho; "
              f"they find this site by {running.relative(run_dir / running.RECORD)})", flush=True)
        while stack.uwsgi.poll() is None and stack.nginx.poll() is None:
            time.sleep(0.5)
        print(f"A server stopped unexpectedly; see {run_dir}/uwsgi.log and nginx-error.log", file=sys.stderr)
        status = 1
    except (StepFailed, RuntimeError) as exc:  # RuntimeError: a server did not come up (which, and its log)
        print(exc, file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print()
    finally:
        # A second Ctrl-C must not cut the stopping short and leave servers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        running.forget_site(run_dir)
        started = [name for name, process in (("uWSGI", stack.uwsgi), ("nginx", stack.nginx)) if process]
        if own_redis is not None:
            started.append("redis-server")
        if own_cluster is not None and own_cluster.procs.processes:
            started.append("the Redis Cluster")
        if started:
            print(f"Stopping {', '.join(started)} ...", end=" ", flush=True)
            stopping = time.monotonic()
            stack.stop()
            if own_redis is not None:
                own_redis.stop()
            if own_cluster is not None:
                own_cluster.stop()
            print(f"{time.monotonic() - stopping:.1f} s")
    return status


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.stack", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="set up and serve the site")
    run_parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    run_parser.add_argument("--run-dir", type=Path, default=ROOT / "run",
                            help="sockets, pid files and logs (default: run/ in the checkout)")
    run_parser.add_argument("--redis", choices=("single", "cluster"), default="single",
                            help="cluster: start a local Redis Cluster (3 primaries + 3 replicas) instead of REDIS_URL")
    run_parser.add_argument("--nodes", type=int, default=1, help="WebSocket nodes behind nginx (default 1)")
    run_parser.add_argument("--max-sockets", type=int, default=None,
                            help="the peak of open WebSockets to size for "
                                 f"(default: WS_MAX_SOCKETS, else {RUN_SOCKETS:,})")
    args = parser.parse_args()
    if args.command == "run":
        max_sockets = args.max_sockets
        if max_sockets is None:
            try:
                max_sockets = int(os.environ.get("WS_MAX_SOCKETS", RUN_SOCKETS))
            except ValueError:
                parser.error(f"WS_MAX_SOCKETS must be a whole number, not {os.environ['WS_MAX_SOCKETS']!r}")
        sys.exit(run(args.port, args.run_dir.resolve(), args.redis, args.nodes, max_sockets))


if __name__ == "__main__":
    main()
