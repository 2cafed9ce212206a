"""``python -m bench nginx_memory``: nginx's memory per idle proxied WebSocket, configuration by
configuration, and whether each configuration still serves what users need.

One Redis and one WebSocket instance (deploy/uwsgi.ini, 4 workers) serve the whole run; nginx is
restarted from deploy/nginx.conf with each configuration of VARIANTS in turn. For each one:

1. what users need still works: a handshake with a 6 KB Cookie header, a subprotocol and a
   permessage-deflate offer (the answer's Sec-WebSocket-Extensions must come back); a 1 MiB
   message from the server (one broadcast) and 1 MiB from the client (16 messages of 64 KiB,
   the server's message limit, echoed back) through the tunnel;
2. 200 warm-up sockets get a broadcast and close (first-use costs are not counted), nginx's RSS
   (master and workers) is read, N sockets open on ``/ws/bench?subscribe-broadcast`` and one
   broadcast must reach all of them, they idle ``--hold`` seconds, the RSS is read again:
   (after - before) / sockets held is the figure;
3. one small broadcast to all N: time to the last delivery and deliveries/s (how nginx relays
   many small frames with this configuration; it moves with the machine's load).

    python -m bench nginx_memory                                  # N = 5,000, every configuration
    python -m bench nginx_memory --sockets 20000 --variants defaults,deploy
    python -m bench nginx_memory --list                           # the configurations
    python -m bench nginx_memory --allocations --variants defaults,deploy   # nginx's own blocks

Figures, not assertions: a failed check is printed, not raised. Every wait is bounded.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.stack import RedisServer, Stack, free_port, stop_pid

from . import machine
from .fleet import Fleet
from .memory import Memory, memory_of, with_children
from .targets import RunningStack, Ws4RedisStack
from .workloads import WARM_UP_SOCKETS, Plan, _broadcast, _connect_relayed, _warm_up

RESULTS = Path(__file__).resolve().parent / "results"
# The http-level (server-level) directives the configurations set: removed for the defaults.
POOLS = ("connection_pool_size", "request_pool_size", "client_header_buffer_size", "large_client_header_buffers")
# The directives of `location /ws/ { }` the configurations set, and the params it sends.
WS_BUFFERS = ("uwsgi_buffer_size",)
INCLUDE_PARAMS = re.compile(r"^\s*include\s+\S*uwsgi_params;\n", re.M)
# What the WebSocket instance reads of a request: the path and query, the method, the peer's
# address, the Host it validates; HTTP_* headers (Upgrade, Sec-WebSocket-*, Origin, Cookie) come
# from uwsgi_pass_request_headers.
LEAN_PARAMS = (
    ("REQUEST_METHOD", "$request_method"), ("QUERY_STRING", "$query_string"), ("PATH_INFO", "$document_uri"),
    ("SERVER_PROTOCOL", "$server_protocol"), ("REQUEST_SCHEME", "$scheme"), ("HTTPS", "$https if_not_empty"),
    ("REMOTE_ADDR", "$remote_addr"), ("SERVER_NAME", "$server_name"), ("SERVER_PORT", "$server_port"),
    ("HTTP_HOST", "$http_host"),
)
COOKIE_BYTES = 6 * 1024
MIB = 1024 * 1024
CLIENT_CHUNK = 64 * 1024  # the demo's WS4REDIS_MAX_MESSAGE_SIZE
DEBUG_LOG = "nginx-debug.log"
ALLOCATION = re.compile(r"\b(?:malloc|posix_memalign): ([0-9A-Fa-f]+):(\d+)|\bfree: ([0-9A-Fa-f]+)")


@dataclass(frozen=True)
class Variant:
    """An nginx configuration: deploy/nginx.conf with ``pools`` at http level and ``ws`` in
    ``location /ws/`` (each replacing the file's own, if any); ``lean_params`` sends LEAN_PARAMS
    instead of deploy/uwsgi_params. ``as_deployed`` keeps the file as it is."""

    note: str
    pools: dict[str, str] = field(default_factory=dict)
    ws: dict[str, str] = field(default_factory=dict)
    lean_params: bool = False
    as_deployed: bool = False

    def apply(self, text: str) -> str:
        if self.as_deployed:
            return text
        for name in POOLS:
            text = re.sub(rf"^\s*{name}\s[^;]*;\n", "", text, flags=re.M)
        head, opening, rest = text.partition("    location /ws/ {\n")
        block, closing, tail = rest.partition("\n        }\n")
        for name in WS_BUFFERS:
            block = re.sub(rf"^\s*{name}\s[^;]*;\n", "", block + "\n", flags=re.M).rstrip("\n")
        if self.lean_params:
            lines = "".join(f"            uwsgi_param {key} {value};\n" for key, value in LEAN_PARAMS)
            block = INCLUDE_PARAMS.sub(lines, block + "\n").rstrip("\n")
        added = "".join(f"            {name} {value};\n" for name, value in self.ws.items())
        text = head + opening + added + block + closing + tail
        pools = "".join(f"    {name} {value};\n" for name, value in self.pools.items())
        return text.replace("\nhttp {\n", "\nhttp {\n" + pools, 1)


VARIANTS: dict[str, Variant] = {
    "defaults": Variant("nginx 1.22's defaults: uwsgi_buffer_size 4k, request_pool_size 4k, "
                        "connection_pool_size 512, client_header_buffer_size 1k"),
    "deploy": Variant("deploy/nginx.conf as it is", as_deployed=True),
    "lean-params": Variant("10 uwsgi_params instead of deploy/uwsgi_params' 15", lean_params=True),
}
# name: uwsgi_buffer_size (None: the default), http-level directives.
TUNED: dict[str, tuple[str | None, dict[str, str]]] = {
    "buffer-2k": ("2k", {}),
    "buffer-1k": ("1k", {}),
    "buffer-512": ("512", {}),
    "request-pool-2k": (None, {"request_pool_size": "2k"}),
    "request-pool-8k": (None, {"request_pool_size": "8k"}),
    "connection-pool-256": (None, {"connection_pool_size": "256"}),
    "header-buffer-512": (None, {"client_header_buffer_size": "512"}),
    "buffer-1k-pool-16k": ("1k", {"request_pool_size": "16k"}),
    "buffer-1k-pool-8k": ("1k", {"request_pool_size": "8k"}),
    "buffer-1k-pool-2k": ("1k", {"request_pool_size": "2k"}),
    "buffer-1k-pool-1k": ("1k", {"request_pool_size": "1k"}),
    "buffer-1k-pool-512": ("1k", {"request_pool_size": "512"}),
    "buffer-1k-pool-256": ("1k", {"request_pool_size": "256"}),
    "buffer-1k-pools-256": ("1k", {"request_pool_size": "512", "connection_pool_size": "256"}),
    "buffer-768-pool-512": ("768", {"request_pool_size": "512"}),
    "buffer-512-pool-512": ("512", {"request_pool_size": "512"}),
    "buffer-512-pool-2k": ("512", {"request_pool_size": "2k"}),
}
for _name, (_buffer, _pools) in TUNED.items():
    _ws = {"uwsgi_buffer_size": _buffer} if _buffer else {}
    VARIANTS[_name] = Variant(", ".join(f"{key} {value}" for key, value in {**_ws, **_pools}.items()), _pools, _ws)


class TunedStack(Stack):
    """deploy.stack's Stack whose nginx runs deploy/nginx.conf as ``variant`` changes it."""

    variant = VARIANTS["deploy"]
    debug_log = False

    def render_nginx(self) -> Path:
        path = super().render_nginx()
        text = self.variant.apply(path.read_text())
        if self.debug_log:  # nginx's Debian build has --with-debug: every allocation is logged
            text = re.sub(r"^error_log .*;$", f"error_log {self.run_dir / DEBUG_LOG} debug;", text, flags=re.M)
        path.write_text(text)
        return path

    def restart_nginx(self, variant: Variant, debug_log: bool = False) -> None:
        stop_pid(self.nginx, signal.SIGQUIT, 30)
        self.variant, self.debug_log = variant, debug_log
        try:
            self.start_nginx()
        except RuntimeError as exc:  # nginx's own complaint is in its output, not its error log
            output = (self.run_dir / "nginx.log").read_text(errors="replace").splitlines()[-10:]
            raise RuntimeError(f"{exc}\n--- nginx's output ---\n" + "\n".join(output)) from None


class TunedTarget(Ws4RedisStack):
    """The project's stack (bench.targets) with a TunedStack and permessage-deflate on (so the
    extension's answer is checked through nginx; the load sockets do not offer it)."""

    def start(self) -> None:
        self.redis_server = RedisServer().start()
        self.stack = TunedStack(free_port(), self.redis_server.url, max_sockets=self.sockets,
                                env={"WS4REDIS_COMPRESSION": "1"})
        self.stack.start()
        self.base_url, self.redis_url = self.stack.ws_url, self.redis_server.url
        RunningStack.start(self)
        self._wait_until_every_worker_relays()


def check_guarantees(target: TunedTarget) -> dict[str, str]:
    """Returns "ok" or what went wrong for each thing users need through the tunnel."""
    from websockets.sync.client import connect

    base = target.base_url
    results: dict[str, str] = {}

    def attempt(name: str, step: Any) -> None:
        started = time.monotonic()
        try:
            step()
        except Exception as exc:  # a figure: the failure is reported, the run goes on
            results[name] = f"{type(exc).__name__}: {exc}"
        else:
            results[name] = f"ok in {(time.monotonic() - started) * 1000:.0f} ms"

    def big_cookie_and_headers() -> None:
        cookie = "bigcookie=" + "c" * (COOKIE_BYTES - len("bigcookie="))
        with connect(f"{base}/ws/bench?subscribe-broadcast", additional_headers={"Cookie": cookie},
                     subprotocols=["chat.v1"], compression="deflate", open_timeout=10) as ws:  # type: ignore[list-item]
            assert ws.response is not None
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            if "permessage-deflate" not in extensions:
                raise AssertionError(f"no permessage-deflate in the answer ({extensions!r})")
            _expect_broadcast(target, ws, "cookie-check")

    def server_mib() -> None:
        with connect(f"{base}/ws/bench?subscribe-broadcast", max_size=None, open_timeout=10) as ws:
            _expect_broadcast(target, ws, base64.b64encode(os.urandom(MIB * 3 // 4)).decode())

    def client_mib() -> None:
        with connect(f"{base}/ws/echo/raw/", max_size=None, open_timeout=10) as ws:
            chunks = [os.urandom(CLIENT_CHUNK) for _ in range(MIB // CLIENT_CHUNK)]
            for chunk in chunks:
                ws.send(chunk)
            for chunk in chunks:
                if ws.recv(timeout=30) != chunk:
                    raise AssertionError("an echoed 64 KiB message differs")

    attempt("6 KB cookie, subprotocol, deflate", big_cookie_and_headers)
    attempt("1 MiB server to client", server_mib)
    attempt("1 MiB client to server and back", client_mib)
    return results


def _expect_broadcast(target: TunedTarget, ws: Any, text: str, timeout: float = 30) -> None:
    """Publishes ``text`` on the bench channel until ``ws`` has it (its subscription may be
    confirmed a moment after the handshake); raises TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        target.publish(text)
        try:
            while True:
                if ws.recv(timeout=1) == text:
                    return
        except TimeoutError:
            continue
    raise TimeoutError(f"no broadcast of {len(text):,} bytes within {timeout:g} s")


def allocations(target: TunedTarget, stack: TunedStack, variant: Variant) -> list[int]:
    """Returns the sizes of what nginx allocated for one idle WebSocket and still holds once it
    has relayed a broadcast (from the debug log of a fresh nginx, in the order allocated)."""
    from websockets.sync.client import connect

    stack.restart_nginx(variant, debug_log=True)
    log = stack.run_dir / DEBUG_LOG
    start = log.stat().st_size
    with connect(f"{target.base_url}/ws/bench?subscribe-broadcast", open_timeout=10) as ws:
        _expect_broadcast(target, ws, "allocations")
        with open(log, "rb") as lines:
            lines.seek(start)
            text = lines.read().decode(errors="replace")
    held: dict[str, int] = {}
    for found in ALLOCATION.finditer(text):
        address, size, freed = found.groups()
        if freed:
            held.pop(freed, None)
        else:
            held[address] = int(size)
    return list(held.values())


def nginx_memory(target: TunedTarget) -> Memory:
    """RSS and PSS of nginx's master and workers."""
    assert target.stack is not None and target.stack.nginx is not None
    return memory_of(with_children(target.stack.nginx.pid))


def measure_variant(target: TunedTarget, fleet: Fleet, sockets: int, plan: Plan, log: Any) -> dict[str, Any]:
    """Memory per idle socket of nginx as configured now, and one small broadcast's time."""
    _warm_up(target, fleet, min(WARM_UP_SOCKETS, sockets), plan, log)
    before = nginx_memory(target)
    connected, openings = _connect_relayed(target, fleet, sockets, plan, log)
    time.sleep(plan.hold)
    held = fleet.open_sockets()
    after = nginx_memory(target)
    broadcast = _broadcast(target, fleet, ["small"], plan, held)
    fleet.close_all()
    return {
        "sockets": sockets, "opened": connected.opened, "openings": openings, "held": held,
        "nginx_rss_kib_before": before.rss_kib, "nginx_rss_kib_after": after.rss_kib,
        "kib_per_socket": round((after - before).rss_kib / held, 2) if held else None,
        "broadcast_last_ms": broadcast["last_ms"], "broadcast_deliveries_per_s": broadcast["deliveries_per_s"],
        "broadcast_delivered": broadcast["delivered"],
    }


def run(names: list[str], sockets: int, hold: float, repeat: int, out: Path) -> dict[str, Any]:
    plan = Plan(hold=hold)
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine.describe(),
        "background_busy_pct": machine.busy_percent(3), "sockets": sockets, "hold": hold, "variants": [],
    }
    print(f"Other work is using {result['background_busy_pct']:.0f} % of the CPUs "
          f"(load average {os.getloadavg()[0]:.1f}).", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"nginx-memory-{time.strftime('%Y%m%d-%H%M%S')}.json"
    target = TunedTarget(sockets)
    try:
        target.start()
        stack = target.stack
        assert isinstance(stack, TunedStack)
        with Fleet.for_sockets(sockets) as fleet:
            for name in names:
                row: dict[str, Any] = {"variant": name, "note": VARIANTS[name].note, "runs": []}
                for number in range(repeat):
                    # A fresh nginx each time: a worker's heap keeps what its last sockets freed.
                    stack.restart_nginx(VARIANTS[name])
                    if number == 0:
                        row["checks"] = check_guarantees(target)
                    row["runs"].append(measure_variant(target, fleet, sockets, plan,
                                                       lambda line, name=name: print(f"[{name}] {line}", flush=True)))
                row["loadavg_after"] = os.getloadavg()
                result["variants"].append(row)
                print(_line(row), flush=True)
                path.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        target.stop()
    print(f"\n{_table(result)}\nWritten to {path}", flush=True)
    return result


def _line(row: dict[str, Any]) -> str:
    figures = ", ".join(f"{run['kib_per_socket']} KiB/socket ({run['held']:,} held), broadcast "
                        f"{run['broadcast_last_ms']} ms" for run in row["runs"])
    failed = {name: outcome for name, outcome in row["checks"].items() if not outcome.startswith("ok")}
    return f"{row['variant']}: {figures}; checks: {failed or 'all ok'}"


def _table(result: dict[str, Any]) -> str:
    lines = [f"N = {result['sockets']:,} idle sockets, held {result['hold']:g} s; nginx RSS per socket",
             "", "| configuration | KiB/socket | broadcast to all: last delivery ms | checks |", "|---|---:|---:|---|"]
    for row in result["variants"]:
        figures = " / ".join(str(run["kib_per_socket"]) for run in row["runs"])
        times = " / ".join(str(run["broadcast_last_ms"]) for run in row["runs"])
        checks = "ok" if all(outcome.startswith("ok") for outcome in row["checks"].values()) else "FAILED"
        lines.append(f"| {row['note']} | {figures} | {times} | {checks} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench nginx_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=5000, help="idle sockets N (default 5000; over 20,000: "
                        "run it under flock /tmp/ws4r-big.lock)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, among: {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds the sockets idle before the RSS is read")
    parser.add_argument("--repeat", type=int, default=1, help="measurements per configuration (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--list", action="store_true", help="print the configurations and their nginx.conf")
    parser.add_argument("--allocations", action="store_true",
                        help="print what nginx allocates and keeps for one idle socket (its debug log)")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = set(names) - set(VARIANTS)
    if unknown or not names:
        parser.error(f"unknown configuration(s) {sorted(unknown)}: choose among {', '.join(VARIANTS)}")
    if not 1 <= args.sockets <= 40_000 or args.repeat < 1 or args.hold < 0:
        parser.error("--sockets between 1 and 40,000, --repeat >= 1, --hold >= 0")
    if args.list:
        template = (Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf").read_text()
        for name in names:
            print(f"## {name}: {VARIANTS[name].note}\n{VARIANTS[name].apply(template)}")
        return
    if args.allocations:
        show_allocations(names)
        return
    run(names, args.sockets, args.hold, args.repeat, args.out)


def show_allocations(names: list[str]) -> None:
    target = TunedTarget(100)
    try:
        target.start()
        stack = target.stack
        assert isinstance(stack, TunedStack)
        for name in names:
            sizes = allocations(target, stack, VARIANTS[name])
            print(f"{name}: {len(sizes)} blocks, {sum(sizes):,} bytes: {', '.join(map(str, sizes))}", flush=True)
    finally:
        target.stop()

