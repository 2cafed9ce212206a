"""``python -m bench socket_memory``: where an idle socket's memory goes in the uWSGI WebSocket
worker (the README's "Memory per idle socket: where it goes", "The WebSocket worker (uWSGI)").

One Redis, the stack from deploy/ with one WebSocket worker (WS_WORKERS=1) and one nginx worker
(more only when N needs their files), sockets on ``/ws/bench?subscribe-broadcast`` through nginx:

1. traced run: bench/tracemalloc_hook.py is imported into the WebSocket worker by uWSGI's
   ``import`` option (UWSGI_IMPORT in the environment; the emperor and the Django vassal ignore
   it, the library is untouched); it starts ``tracemalloc`` and answers snapshot requests;
2. 200 warm-up sockets get a broadcast and close (first-use costs are not counted); a first
   snapshot is taken and dropped (snapshotting needs heap of its own, which stays resident); the
   worker's RSS is read and a snapshot taken (``gc.collect()`` first);
3. N sockets open, one broadcast must reach all of them, they idle ``--hold`` seconds; the RSS is
   read and a snapshot taken again. Per socket: the RSS's growth, the traced heap's growth, and
   that growth by the line that allocated, grouped as the README's table groups it;
4. untraced run: the same on a fresh stack without the hook, for the RSS alone (tracing inflates
   the RSS: tracemalloc keeps a trace per live block, and its snapshots leave heap behind).

    python -m bench socket_memory                      # N = 5,000, both runs
    python -m bench socket_memory --sockets 200 --trace-only
    python -m bench socket_memory --no-trace           # the RSS without tracing only

Writes bench/results/socket-memory-<time>.json and .md (copied to socket-memory-latest.md).
Figures, not assertions: nothing here fails on a slow machine. Every wait is bounded.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploy.sizing import plan as sizing_plan
from deploy.stack import RedisServer, Stack, free_port, wait_for

from . import machine
from .fleet import Fleet
from .memory import memory_of
from .targets import RunningStack, Ws4RedisStack
from .tracemalloc_hook import DIRECTORY_VARIABLE
from .workloads import WARM_UP_SOCKETS, Plan, _connect_relayed, _warm_up

RESULTS = Path(__file__).resolve().parent / "results"
MAX_SOCKETS = 20_000
HOOK = "bench.tracemalloc_hook"
SNAPSHOT_TIMEOUT = 300.0
TOP_LINES = 15
KIB = 1024

# The README's rows, in its order, with the files whose allocations each row counts: a traced
# line goes to the first row (in _RULES' order) whose test its file passes.
UNKNOWN = "made in C (the WSGI environ)"
GREENLETS = "greenlets and their saved stacks"
HANDSHAKE = "the handshake's objects"
OWN = "the socket's own objects"
BOOKKEEPING = "bookkeeping"
REDIS = "redis-py"
OTHER = "other lines"
_LIBRARY = "/ws4redis_server/"
_OWN_FILES = ("connection.py", "protocol.py", "delivery.py", "frames.py", "compression.py", "transports/")
_BOOKKEEPING_FILES = ("server.py", "hub.py")
_HANDSHAKE_FILES = ("handshake.py", "channels.py", "identity.py")
FILES = {
    UNKNOWN: "<unknown>: no Python frame (uWSGI's C code)",
    GREENLETS: "gevent/, greenlet/ (a greenlet's stack is under the line that switched away)",
    HANDSHAKE: "django/, asgiref/, ws4redis_server/ " + ", ".join(_HANDSHAKE_FILES),
    OWN: "ws4redis_server/ " + ", ".join(_OWN_FILES),
    BOOKKEEPING: "ws4redis_server/ " + ", ".join(_BOOKKEEPING_FILES),
    REDIS: "redis/",
    OTHER: "any other file",
}
GROUPS = tuple(FILES)


def _in_library(path: str, names: tuple[str, ...]) -> bool:
    return any(f"{_LIBRARY}{name}" in path for name in names)


_RULES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    (UNKNOWN, lambda path: path == "<unknown>"),
    (OWN, lambda path: _in_library(path, _OWN_FILES)),
    (BOOKKEEPING, lambda path: _in_library(path, _BOOKKEEPING_FILES)),
    (HANDSHAKE, lambda path: "/django/" in path or "/asgiref/" in path or _in_library(path, _HANDSHAKE_FILES)),
    (REDIS, lambda path: "/redis/" in path),
    (GREENLETS, lambda path: "/gevent/" in path or "/greenlet/" in path),
)


def group_of(path: str) -> str:
    """Returns the README's row for an allocation made at ``path`` (a file tracemalloc names)."""
    for group, test in _RULES:
        if test(path):
            return group
    return OTHER


def growth(before: list[list[Any]], after: list[list[Any]]) -> list[tuple[str, int, int, int]]:
    """Returns (file, line, bytes, blocks) for every line whose traced allocations changed between
    two snapshots' ``lines`` ([file, line, bytes, blocks] each), largest growth first."""
    old = {(path, line): (size, count) for path, line, size, count in before}
    changed = []
    for path, line, size, count in after:
        was_size, was_count = old.pop((path, line), (0, 0))
        if (size, count) != (was_size, was_count):
            changed.append((path, line, size - was_size, count - was_count))
    changed.extend((path, line, -size, -count) for (path, line), (size, count) in old.items())
    return sorted(changed, key=lambda row: (-row[2], row[0], row[1]))


def by_group(lines: list[tuple[str, int, int, int]]) -> dict[str, int]:
    """Sums the bytes of ``lines`` (as ``growth`` returns them) by group, every group present."""
    sums = dict.fromkeys(GROUPS, 0)
    for path, _line, size, _count in lines:
        sums[group_of(path)] += size
    return sums


def short_path(path: str) -> str:
    """A file as the table shows it: from the package down (site-packages/ and the checkout cut)."""
    for marker in ("site-packages/", f"{Path(__file__).resolve().parent.parent}/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


class WorkerTarget(Ws4RedisStack):
    """The project's stack with one WebSocket worker and as few nginx workers as N allows
    (one up to ~10,000 sockets); with ``trace_dir``, bench/tracemalloc_hook.py is loaded into
    the WebSocket worker and answers in that directory."""

    def __init__(self, sockets: int, trace_dir: Path | None) -> None:
        super().__init__(sockets)
        self.trace_dir = trace_dir

    def start(self) -> None:
        env = {"WS_WORKERS": "1"}
        if self.trace_dir is not None:
            env.update({"UWSGI_IMPORT": HOOK, DIRECTORY_VARIABLE: str(self.trace_dir)})
        self.redis_server = RedisServer().start()
        self.stack = Stack(free_port(), self.redis_server.url, env=env, nginx_workers=nginx_workers_for(self.sockets),
                           max_sockets=self.sockets)
        self.stack.start()
        self.base_url, self.redis_url = self.stack.ws_url, self.redis_server.url
        RunningStack.start(self)
        self._wait_until_every_worker_relays()

    @property
    def worker(self) -> int:
        assert self.stack is not None
        (pid,) = self.stack.worker_pids("websocket")
        return pid

    def snapshot(self, label: str) -> dict[str, Any]:
        """Asks the worker's hook for a snapshot and returns it (given up after SNAPSHOT_TIMEOUT s,
        as deploy.stack.wait_for gives up, with uWSGI's log)."""
        assert self.trace_dir is not None and self.stack is not None
        pid, directory = self.worker, self.trace_dir
        answer = directory / f"{pid}-{label}.json"
        wait_for((directory / f"{pid}.ready").exists, 60, "the tracemalloc hook in the worker",
                 self.stack.run_dir / "uwsgi.log")
        (directory / f"{pid}.req").write_text(label)
        wait_for(answer.exists, SNAPSHOT_TIMEOUT, f"the worker's {label} snapshot", self.stack.run_dir / "uwsgi.log")
        return json.loads(answer.read_text())


def nginx_workers_for(sockets: int) -> int | None:
    """One nginx worker when it can hold ``sockets`` (two files each), else as many as the sizing
    gives (None)."""
    return 1 if sizing_plan(sockets).nginx_workers == 1 else None


def measure(sockets: int, hold: float, trace: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """One run on a fresh stack: the worker's RSS (and with ``trace`` its snapshots) before and
    after ``sockets`` idle sockets opened."""
    trace_dir = Path(tempfile.mkdtemp(prefix="ws4r-tracemalloc-")) if trace else None
    target = WorkerTarget(sockets, trace_dir)
    plan = Plan(hold=hold)
    try:
        target.start()
        with Fleet.for_sockets(sockets) as fleet:
            _warm_up(target, fleet, min(WARM_UP_SOCKETS, sockets), plan, log)
            worker = target.worker
            if trace:  # a first snapshot takes the heap to what snapshotting it needs: not counted
                target.snapshot("warm-up")
            rss_before = memory_of([worker]).rss_kib
            before = target.snapshot("before") if trace else None
            connected, openings = _connect_relayed(target, fleet, sockets, plan, log)
            time.sleep(hold)
            held = fleet.open_sockets()
            rss_after = memory_of([worker]).rss_kib
            after = target.snapshot("after") if trace else None
            fleet.close_all()
    finally:
        target.stop()
        if trace_dir is not None:
            shutil.rmtree(trace_dir, ignore_errors=True)
    row: dict[str, Any] = {
        "traced": trace, "sockets": sockets, "opened": connected.opened, "openings": openings, "held": held,
        "failures": connected.failures, "worker_rss_kib_before": rss_before, "worker_rss_kib_after": rss_after,
        "rss_kib_per_socket": round((rss_after - rss_before) / held, 2) if held else None,
    }
    if before is not None and after is not None:
        row.update(traced_figures(before, after, held))
    return row


def traced_figures(before: dict[str, Any], after: dict[str, Any], held: int) -> dict[str, Any]:
    """The traced heap's growth per socket, by group and by line, from two snapshots."""
    lines = growth(before["lines"], after["lines"])
    total = sum(size for *_, size, _count in after["lines"]) - sum(size for *_, size, _count in before["lines"])
    per_socket = (lambda size: round(size / held / KIB, 3)) if held else (lambda size: None)
    return {
        "traced_kib_before": round(before["traced_bytes"] / KIB),
        "traced_kib_after": round(after["traced_bytes"] / KIB),
        "tracemalloc_kib_before": round(before["tracemalloc_bytes"] / KIB),
        "tracemalloc_kib_after": round(after["tracemalloc_bytes"] / KIB),
        "tracemalloc_kib_per_socket": per_socket(after["tracemalloc_bytes"] - before["tracemalloc_bytes"]),
        "traced_kib_per_socket": per_socket(total),
        "groups_kib_per_socket": {group: per_socket(size) for group, size in by_group(lines).items()},
        "top_lines": [{"file": short_path(path), "line": line, "group": group_of(path),
                       "bytes_per_socket": round(size / held, 1) if held else None,
                       "blocks_per_socket": round(count / held, 2) if held else None}
                      for path, line, size, count in lines[:TOP_LINES]],
    }


def markdown(result: dict[str, Any]) -> str:
    """The report: the per-socket table, the top lines, the notes."""
    runs = {("traced" if row["traced"] else "untraced"): row for row in result["runs"]}
    traced, untraced = runs.get("traced"), runs.get("untraced")
    lines = [f"# Memory per idle socket in one uWSGI WebSocket worker, N = {result['sockets']:,}", "",
             f"{result['started']}, {result['machine']['cores']} cores, load average "
             f"{' / '.join(f'{value:.1f}' for value in result['loadavg_before'])} before, other work using "
             f"{result['background_busy_pct']:.0f} % of the CPUs.", ""]
    for name, row in runs.items():
        lines.append(f"- {name} run: {row['held']:,} of {row['sockets']:,} sockets held "
                     f"({row['opened']:,} opened, {row['openings']} opening(s)"
                     + (f", failures {row['failures']}" if row["failures"] else "") + f"); worker RSS "
                     f"{row['worker_rss_kib_before']:,} -> {row['worker_rss_kib_after']:,} KiB")
    lines += ["", "| kept per socket | allocated in | KiB |", "|---|---|---:|"]
    if traced is not None:
        for group, value in traced["groups_kib_per_socket"].items():
            lines.append(f"| {group} | {FILES[group]} | {_kib(value)} |")
        lines.append(f"| Python's heap, traced | | {_kib(traced['traced_kib_per_socket'])} |")
        lines.append(f"| RSS per idle socket, traced run (inflated by tracing) | | "
                     f"{_kib(traced['rss_kib_per_socket'])} |")
    if untraced is not None:
        lines.append(f"| **RSS per idle socket**, no tracing | | **{_kib(untraced['rss_kib_per_socket'])}** |")
    if traced is not None:
        lines += ["", f"Top {TOP_LINES} lines by growth (traced run):", "",
                  "| file:line | group | B/socket | blocks/socket |", "|---|---|---:|---:|"]
        lines += [f"| {top['file']}:{top['line']} | {top['group']} | {top['bytes_per_socket']} | "
                  f"{top['blocks_per_socket']} |" for top in traced["top_lines"]]
        lines += ["", "tracemalloc inflates the traced run's RSS: its own tables (a trace per live block) "
                  f"held {traced['tracemalloc_kib_before']:,} KiB before the sockets and "
                  f"{traced['tracemalloc_kib_after']:,} KiB after ({_kib(traced['tracemalloc_kib_per_socket'])} "
                  "KiB per socket), and each snapshot leaves heap behind, which later allocations reuse: the "
                  "traced run's RSS is not the sockets' cost. The RSS without tracing is the untraced run's."]
    return "\n".join(lines) + "\n"


def _log(run_name: str, line: str) -> None:
    print(f"[{run_name}] {line}", flush=True)


def _kib(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def run(sockets: int, hold: float, kinds: list[bool], out: Path) -> dict[str, Any]:
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine.describe(),
        "background_busy_pct": machine.busy_percent(3), "loadavg_before": os.getloadavg(), "sockets": sockets,
        "hold": hold, "runs": [],
    }
    print(f"Other work is using {result['background_busy_pct']:.0f} % of the CPUs "
          f"(load average {os.getloadavg()[0]:.1f}).", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"socket-memory-{time.strftime('%Y%m%d-%H%M%S')}"
    for trace in kinds:
        name = "traced" if trace else "untraced"
        row = measure(sockets, hold, trace, functools.partial(_log, name))
        row["loadavg_after"] = os.getloadavg()
        result["runs"].append(row)
        print(f"[{name}] {row['held']:,} sockets held: worker RSS {_kib(row['rss_kib_per_socket'])} KiB/socket"
              + (f", traced heap {_kib(row['traced_kib_per_socket'])} KiB/socket" if trace else ""), flush=True)
        base.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    base.with_suffix(".md").write_text(text)
    shutil.copyfile(base.with_suffix(".md"), out / "socket-memory-latest.md")
    print(f"\n{text}\nWritten to {base}.json and .md", flush=True)
    return result


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench socket_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=5000,
                        help=f"idle sockets N in the one WebSocket worker (default 5000, at most {MAX_SOCKETS:,})")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds the sockets idle before the RSS is read")
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument("--no-trace", action="store_true", help="only the run without tracemalloc (the RSS)")
    runs.add_argument("--trace-only", action="store_true", help="only the traced run")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results directory (default {RESULTS})")
    args = parser.parse_args(argv)
    if not 1 <= args.sockets <= MAX_SOCKETS:
        parser.error(f"--sockets must be between 1 and {MAX_SOCKETS:,}")
    if args.hold < 0:
        parser.error("--hold must be >= 0")
    return args


def main(argv: list[str] | None = None) -> None:
    from .__main__ import _stop_like_ctrl_c

    args = parse_args(sys.argv[1:] if argv is None else argv)
    _stop_like_ctrl_c()
    kinds = [False] if args.no_trace else [True] if args.trace_only else [True, False]
    try:
        run(args.sockets, args.hold, kinds, args.out)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: every finally has stopped what it started
        print("python -m bench socket_memory: interrupted; every server and load process it started is stopped",
              file=sys.stderr)
        sys.exit(130)
