"""Sizes the deployment from the expected peak of open WebSockets and the per-process file limit.

Every open WebSocket is one file in a uWSGI WebSocket worker (the connection from nginx) and two
in an nginx worker (the client's connection and the upstream one). A process may hold at most
RLIMIT_NOFILE files, so the peak decides how many workers of each kind are needed:

    ws_workers     enough that each holds its share of the peak (plus SPREAD_MARGIN) and what
                   else it opens (UWSGI_RESERVE_FILES: Redis connections, logs, its listening
                   socket, the imports) within the limit
    nginx_workers  likewise with two files per socket, NGINX_SPARE_CONNECTIONS for page requests
                   and NGINX_RESERVE_FILES (+ 2 per nginx worker: with ``reuseport`` every worker
                   inherits every worker's listening socket, and a channel to each)

    python -m deploy.sizing --sockets 200000 [--nofile N]   # the values, the uWSGI environment,
                                                             # the nginx directives, and why

deploy/stack.py (``make run``, WS_MAX_SOCKETS) and the benchmarks size their stacks with
:func:`plan`.
"""
from __future__ import annotations

import argparse
import math
import resource
from dataclasses import dataclass

# Files a uWSGI WebSocket worker opens besides its sockets: its listening socket, the master's
# pipes, the hub's Redis pub/sub connection(s) and the publishing pool (WS4REDIS_REDIS_MAX_CONNECTIONS,
# 50 by default; one pool per primary on a Redis Cluster), logs, epoll, what the imports open.
UWSGI_RESERVE_FILES = 256
# Files an nginx worker opens besides its connections (logs, epoll, the master's channel), and
# per nginx worker more: reuseport gives every worker a listening socket per worker, each inherited
# by all, and a worker keeps a channel to each other worker.
NGINX_RESERVE_FILES = 64
NGINX_FILES_PER_WORKER = 2
# Connections an nginx worker keeps for page, static and Django requests beside the WebSockets.
NGINX_SPARE_CONNECTIONS = 256
# Room for an uneven spread: nginx balances its upstream with least_conn over per-worker sockets
# (close to even), while the kernel spreads clients over nginx workers by a hash (reuseport).
UWSGI_SPREAD_MARGIN = 1.05
NGINX_SPREAD_MARGIN = 1.10
# nginx refuses more worker processes than this (NGX_MAX_PROCESSES, with its helper processes).
NGINX_MAX_WORKERS = 1000
# A socket gives its uWSGI async core back once its handshake is done (ws4redis_server's uWSGI
# transport detaches it), so a worker's gevent slots bound handshakes in flight only: see
# ws_slots_for.
HANDSHAKE_SLOTS = 1000


@dataclass(frozen=True)
class Sizing:
    sockets: int              # the peak asked for (WS_MAX_SOCKETS)
    nofile: int               # per-process file limit used
    ws_workers: int           # uWSGI WebSocket workers
    ws_slots: int             # gevent async cores per WebSocket worker (uWSGI `gevent = `)
    sockets_per_ws_worker: int
    nginx_workers: int
    nginx_connections: int    # worker_connections
    nginx_rlimit_nofile: int  # worker_rlimit_nofile

    @property
    def sockets_per_nginx_worker(self) -> int:
        return (self.nginx_connections - NGINX_SPARE_CONNECTIONS) // 2

    def env(self) -> dict[str, str]:
        """The environment deploy/uwsgi.ini's websocket section reads."""
        return {"WS_MAX_SOCKETS": str(self.sockets), "WS_WORKERS": str(self.ws_workers),
                "WS_GEVENT": str(self.ws_slots)}

    def nginx(self) -> dict[str, str]:
        """deploy/nginx.conf's sizing placeholders."""
        return {"NGINX_WORKERS": str(self.nginx_workers), "NGINX_CONNECTIONS": str(self.nginx_connections),
                "NGINX_RLIMIT_NOFILE": str(self.nginx_rlimit_nofile)}

    def summary(self) -> str:
        """One line: what it holds and with what (make run's banner)."""
        return (f"sized for {self.sockets:,} WebSockets: WebSocket workers {self.ws_workers} x "
                f"{self.sockets_per_ws_worker:,} sockets, nginx workers {self.nginx_workers} x "
                f"{self.nginx_connections:,} connections, {self.nofile:,} files per process")


def file_limit() -> int:
    """Raises this process's soft RLIMIT_NOFILE to its hard limit (the processes it starts inherit
    it) and returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def ws_slots_for(sockets_per_worker: int) -> int:
    """gevent async cores (uWSGI ``gevent = ``) a WebSocket worker needs for its share of sockets.

    A socket holds its async core during its handshake only: the library then detaches it (the
    worker keeps the file descriptor, the request returns and its core is freed). So the slots
    bound handshakes in flight, HANDSHAKE_SLOTS at most (each core costs ~16 KB of address space
    and ~7 KB resident even unused). With a library whose sockets hold their core while open,
    this would have to be ``sockets_per_worker``: this is the one place that says which."""
    return min(sockets_per_worker, HANDSHAKE_SLOTS)


def _uwsgi_room(nofile: int) -> int:
    return nofile - UWSGI_RESERVE_FILES


def _nginx_reserve(workers: int) -> int:
    return NGINX_RESERVE_FILES + NGINX_FILES_PER_WORKER * workers


def nginx_at_most(workers: int, nofile: int) -> dict[str, str]:
    """nginx.conf's sizing placeholders for a worker count chosen by hand: each worker takes as
    many connections as ``nofile`` allows after its reserve."""
    return {"NGINX_WORKERS": str(workers), "NGINX_CONNECTIONS": str(nofile - _nginx_reserve(workers)),
            "NGINX_RLIMIT_NOFILE": str(nofile)}


def plan(sockets: int, nofile: int | None = None) -> Sizing:
    """The workers and limits that hold ``sockets`` open WebSockets when a process may open
    ``nofile`` files (default: :func:`file_limit`). Raises ValueError for a peak below 1, a limit
    that leaves no room after the reserves, or a peak nginx cannot reach under that limit."""
    if isinstance(sockets, bool) or not isinstance(sockets, int) or sockets < 1:
        raise ValueError(f"the peak of WebSockets must be a whole number >= 1, not {sockets!r}")
    if nofile is None:
        nofile = file_limit()
    if isinstance(nofile, bool) or not isinstance(nofile, int):
        raise ValueError(f"the file limit must be a whole number, not {nofile!r}")
    minimum = max(UWSGI_RESERVE_FILES, _nginx_reserve(1) + NGINX_SPARE_CONNECTIONS) + 2 * 2
    if nofile < minimum:
        raise ValueError(f"a file limit of {nofile} leaves no room for sockets: a process reserves up to "
                         f"{minimum - 4} files for what else it opens; raise it (ulimit -n, LimitNOFILE) "
                         f"to at least {minimum}")

    # uWSGI: one file per socket.
    room = _uwsgi_room(nofile)
    ws_workers = math.ceil(sockets * UWSGI_SPREAD_MARGIN / room)
    per_ws_worker = math.ceil(sockets / ws_workers * UWSGI_SPREAD_MARGIN)
    while per_ws_worker > room:  # rounding up the margin may overshoot by one
        ws_workers += 1
        per_ws_worker = math.ceil(sockets / ws_workers * UWSGI_SPREAD_MARGIN)

    # nginx: two files per socket; its reserve grows with its worker count.
    nginx_workers = max(1, math.ceil(2 * sockets * NGINX_SPREAD_MARGIN / (nofile - NGINX_SPARE_CONNECTIONS)))
    while True:
        if nginx_workers > NGINX_MAX_WORKERS:
            raise ValueError(f"{sockets:,} WebSockets need more than {NGINX_MAX_WORKERS} nginx workers with "
                             f"{nofile:,} files per process (two per socket); raise the file limit")
        per_nginx_worker = math.ceil(sockets / nginx_workers * NGINX_SPREAD_MARGIN)
        connections = 2 * per_nginx_worker + NGINX_SPARE_CONNECTIONS
        rlimit = connections + _nginx_reserve(nginx_workers)
        if rlimit <= nofile:
            break
        nginx_workers += 1
    return Sizing(sockets=sockets, nofile=nofile, ws_workers=ws_workers, ws_slots=ws_slots_for(per_ws_worker),
                  sockets_per_ws_worker=per_ws_worker, nginx_workers=nginx_workers,
                  nginx_connections=connections, nginx_rlimit_nofile=rlimit)


def explain(sizing: Sizing) -> str:
    """The derived values, the uWSGI environment and the nginx directives, and why."""
    s = sizing
    ws_files = s.sockets_per_ws_worker + UWSGI_RESERVE_FILES
    lines = [
        f"Peak: {s.sockets:,} WebSockets; files per process: {s.nofile:,}.",
        "",
        f"uWSGI WebSocket workers: {s.ws_workers}, each for up to {s.sockets_per_ws_worker:,} sockets "
        f"({s.sockets:,} / {s.ws_workers} + {UWSGI_SPREAD_MARGIN - 1:.0%} for an uneven spread): one file per "
        f"socket + {UWSGI_RESERVE_FILES} reserved (Redis, logs, listening socket, imports) = {ws_files:,} "
        f"<= {s.nofile:,}.",
        f"gevent slots per worker: {s.ws_slots:,}: handshakes in flight (a socket gives its async core back "
        f"once open), at most {HANDSHAKE_SLOTS:,}.",
        "",
        f"nginx workers: {s.nginx_workers}, each for up to {s.sockets_per_nginx_worker:,} sockets "
        f"(+ {NGINX_SPREAD_MARGIN - 1:.0%}: the kernel spreads clients by a hash): two connections per socket "
        f"(client + upstream) + {NGINX_SPARE_CONNECTIONS} for page requests = worker_connections "
        f"{s.nginx_connections:,}; + {_nginx_reserve(s.nginx_workers)} files reserved (logs, listening "
        f"sockets and channels of {s.nginx_workers} workers) = worker_rlimit_nofile "
        f"{s.nginx_rlimit_nofile:,} <= {s.nofile:,}.",
        "",
        "uWSGI environment (deploy/uwsgi.ini's websocket section):",
        *(f"  {name}={value}" for name, value in s.env().items()),
        "  (or in your own ini: processes = "
        f"{s.ws_workers}, gevent = {s.ws_slots}, one socket per worker mapped with map-socket)",
        "",
        "nginx (deploy/nginx.conf):",
        f"  worker_processes {s.nginx_workers};",
        f"  worker_rlimit_nofile {s.nginx_rlimit_nofile};",
        f"  events {{ worker_connections {s.nginx_connections}; }}",
        f"  upstream websocket {{ least_conn; zone websocket 256k; one `server unix:.../ws-<w>.sock;` "
        f"per worker, w = 1..{s.ws_workers} }}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.sizing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, required=True, help="the expected peak of open WebSockets")
    parser.add_argument("--nofile", type=int, default=None,
                        help="files a process may open (default: this shell's hard RLIMIT_NOFILE)")
    args = parser.parse_args(argv)
    try:
        sizing = plan(args.sockets, args.nofile)
    except ValueError as exc:
        parser.error(str(exc))
    print(explain(sizing))


if __name__ == "__main__":
    main()
