"""What already runs here: the site that `make run` serves (its record, ``run/stack.json``), the
live servers of a run directory, and whatever holds a TCP port.

``python -m deploy.stack run`` refuses to start beside any of them: nginx listens with
``reuseport``, so a second nginx binds a port that another one holds without an error and the
two share its connections, and two stacks in one run directory delete each other's sockets.
The demo commands (``gameoflife``, ``testecho``) read the record to find the site by default.
Standard library only: the commands import it.
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORD = "stack.json"
# A run directory's pid files (glob patterns: the WebSocket nodes of `make cluster` and its Redis
# Cluster's servers are several), and a word the command line of their process holds (a pid file
# left by a killed stack may name a process that has nothing to do with it).
PID_FILES = {"emperor.pid": "uwsgi", "django.pid": "uwsgi", "websocket.pid": "uwsgi", "websocket-*.pid": "uwsgi",
             "nginx.pid": "nginx", "redis-cluster/*/redis.pid": "redis-server"}
SERVING_PROGRAM = "deploy.stack"


def default_run_dir() -> Path:
    """Returns the run directory of `make run`: ``WS4R_RUN_DIR`` (as uWSGI reads it), else ``run/``."""
    return Path(os.environ.get("WS4R_RUN_DIR") or ROOT / "run")


@dataclass(frozen=True)
class Site:
    """The site a ``deploy.stack run`` process serves, as it recorded itself."""

    pid: int
    port: int  # on 127.0.0.1
    record: Path


def record_site(run_dir: Path, port: int) -> Path:
    """Records that this process serves the site on ``port`` from ``run_dir``; returns the file."""
    path = run_dir / RECORD
    path.write_text(json.dumps({"pid": os.getpid(), "port": port, "started": time.time()}) + "\n")
    return path


def forget_site(run_dir: Path) -> None:
    """Removes this process's record from ``run_dir`` (another process's is left alone)."""
    path = run_dir / RECORD
    site = _read_record(path)
    if site is not None and site.pid == os.getpid():
        path.unlink(missing_ok=True)


def recorded_site(run_dir: Path | None = None) -> Site | None:
    """Returns the site recorded in ``run_dir`` (default: :func:`default_run_dir`) if the process
    that recorded it still runs, else None."""
    site = _read_record((run_dir or default_run_dir()) / RECORD)
    if site is None or not _runs(site.pid, SERVING_PROGRAM):
        return None
    return site


def _read_record(path: Path) -> Site | None:
    try:
        data = json.loads(path.read_text())
        return Site(int(data["pid"]), int(data["port"]), path)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def default_ws_url() -> tuple[str, str]:
    """Returns the demo commands' default site, ``ws://127.0.0.1:<port>``, and why, in words: the
    site `make run` serves, else the port of ``PORT``, else 8000."""
    site = recorded_site()
    if site is not None:
        return f"ws://127.0.0.1:{site.port}", f"the one `make run` serves (PID {site.pid}, {relative(site.record)})"
    record = relative(default_run_dir() / RECORD)
    if "PORT" in os.environ:
        return f"ws://127.0.0.1:{os.environ['PORT']}", f"from PORT: no running `make run` recorded in {record}"
    return "ws://127.0.0.1:8000", f"the default port: no running `make run` recorded in {record}"


def live_servers(run_dir: Path) -> str | None:
    """Returns what still runs from ``run_dir`` (its serving process and servers, from their pid
    files), in words, or None if nothing does."""
    found = []
    site = recorded_site(run_dir)
    if site is not None:
        found.append(f"`python -m deploy.stack run` serving http://127.0.0.1:{site.port}/ (PID {site.pid})")
    for pattern, program in PID_FILES.items():
        for path in sorted(run_dir.glob(pattern)):
            try:
                pid = int(path.read_text().strip())
            except (OSError, ValueError):
                continue
            if _runs(pid, program):
                found.append(f"{program} PID {pid} ({path.relative_to(run_dir)})")
    return "; ".join(found) or None


def refusal(port: int, run_dir: Path) -> str | None:
    """Returns why a stack must not start on ``port`` from ``run_dir`` (another one serves from
    that directory, or something holds the port), or None."""
    servers = live_servers(run_dir)
    if servers is not None:
        return (f"{relative(run_dir)}/ belongs to a stack that is still running: {servers}.\n"
                "Stop it first (Ctrl-C where it runs), or use it as it is.")
    if port_taken(port):
        return (f"Port {port} is taken: {describe_port(port)}.\n"
                f"Stop that, or serve on another port, e.g. PORT={free_port_after(port)} make run")
    return None


def free_port_after(port: int) -> int:
    """Returns the first of the next 100 ports above ``port`` that nothing holds, else any free one."""
    for candidate in range(port + 1, min(port + 101, 65536)):
        if not port_taken(candidate):
            return candidate
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_taken(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts connections on ``host:port`` or holds the port (a listener on
    every address, one that would refuse this process's bind)."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((host, port)) == 0:
            return True
    with socket.socket() as probe:
        # Without SO_REUSEPORT: a bind beside nginx's reuseport listeners must fail.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def port_holders(port: int) -> list[tuple[int, str]]:
    """Returns (PID, command line) of the processes listening on TCP ``port`` that this process
    may see, parents first (an nginx master, not each of its workers)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return []
    holders: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except OSError:  # gone, or not ours to read
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            holders[int(entry.name)] = _command_line(int(entry.name))
    return sorted((pid, line) for pid, line in holders.items() if _parent(pid) not in holders)


def describe_port(port: int) -> str:
    """Returns what holds ``port``, in words: "held by PID <pid> (<command line>)" when this
    process may see it."""
    holders = port_holders(port)
    if not holders:
        return "something listens on it (its process is not visible from here)"
    return "held by " + ", ".join(f"PID {pid} ({line})" for pid, line in holders[:3])


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local address "0100007F:1F40", state 0A = LISTEN, inode in the tenth column.
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _runs(pid: int, program: str) -> bool:
    """True if process ``pid`` is alive and its command line mentions ``program``."""
    return pid > 0 and program.lower() in _command_line(pid).lower()


def _command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    line = raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()
    return line if len(line) <= 100 else line[:99] + "…"


def _parent(pid: int) -> int:
    try:
        # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def relative(path: Path) -> str:
    """Returns ``path`` relative to the checkout when inside it, for messages."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)
