"""The measurements for one target at one socket count N:

1. hold N idle sockets through nginx (opened, failures, connect time, still open after the hold);
2. memory per idle socket: server processes and nginx, each against its own baseline;
3. echo round trip percentiles (the testecho transcript) while the N sockets idle;
4. single broadcasts to all N: time to the last delivery, deliveries per second;
5. a burst of back-to-back broadcasts: time until every socket has all of them.

Every step is bounded in time; what did not arrive in time is reported as missing.

Before anything is measured, one broadcast must reach every socket: first a few warm-up sockets
(first-use costs are then neither timed nor counted), then the N sockets themselves. A server
process whose subscription to the broadcast channel never took would otherwise leave its sockets
waiting out every delivery timeout, and the figures would describe that, not the server.
"""
from __future__ import annotations

import io
import math
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from workers.testecho import latency_summary, run_testecho
from workers.wsload import parse_ws_url

from .fleet import ConnectResult, Fleet, broadcast_text
from .memory import Memory
from .targets import Target

Log = Callable[[str], None]
# Enough to reach every server worker process, a few times over if need be.
WARM_UP_SOCKETS = 200
WARM_UP_ROUNDS = 3
STARTS = 3
# Times the N sockets are opened afresh when a broadcast does not reach every one of them.
RELAY_CHECKS = 3


@dataclass(frozen=True)
class Plan:
    """How long and how much: the knobs of ``python -m bench``."""

    hold: float = 35.0
    broadcasts: int = 3
    burst: int = 10
    echo_clients: int = 100
    echo_delay: float = 0.2
    delivery_timeout: float = 60.0


def measure(target: Target, sockets: int, plan: Plan, log: Log) -> dict[str, Any]:
    """Starts ``target``, runs every workload with ``sockets`` idle sockets, stops it; returns
    the figures (see the module docstring). A start where no warm-up round got a broadcast to
    every socket is retried (up to STARTS times): its figures would describe a broken start."""
    def note(line: str) -> None:
        log(f"[{target.name} N={sockets}] {line}")

    for start in range(1, STARTS + 1):
        note("starting" + (f" (attempt {start})" if start > 1 else ""))
        try:
            target.start()  # inside the try: a half-started target is stopped too
            with Fleet.for_sockets(sockets) as fleet:
                try:
                    warm_up_rounds = _warm_up(target, fleet, plan, note)
                except RuntimeError as exc:
                    if start == STARTS:
                        raise
                    note(f"{exc}: starting afresh")
                    continue
                baseline = target.memory()
                result = _with_fleet(target, fleet, sockets, plan, baseline, note)
                result.update(starts=start, warm_up_rounds=warm_up_rounds)
                fleet.close_all()
            return result
        finally:
            target.stop()
    raise AssertionError("unreachable: the last start always measures")


def _warm_up(target: Target, fleet: Fleet, plan: Plan, log: Log) -> int:
    """Opens, feeds and closes a few sockets until every one of them gets a broadcast, so
    first-use costs (imports, Redis connections, buffers) are neither timed nor counted as memory
    per socket. Returns the rounds it took; raises RuntimeError after WARM_UP_ROUNDS."""
    for round_ in range(1, WARM_UP_ROUNDS + 1):
        opened = fleet.connect(parse_ws_url(target.idle_url), WARM_UP_SOCKETS, timeout=60).opened
        delivered = _broadcast(target, fleet, ["warm-up"], replace(plan, delivery_timeout=10), opened)["delivered"]
        fleet.close_all()
        if opened == delivered == WARM_UP_SOCKETS:
            time.sleep(1)
            return round_
        log(f"warm-up round {round_}: {opened} of {WARM_UP_SOCKETS} sockets opened, {delivered} got the broadcast")
    raise RuntimeError(f"warm-up: in the last of {WARM_UP_ROUNDS} rounds {opened} of {WARM_UP_SOCKETS} sockets "
                       f"opened and {delivered} of them got a broadcast; a server process does not relay")


def _connect_relayed(target: Target, fleet: Fleet, sockets: int, plan: Plan, log: Log) -> tuple[ConnectResult, int]:
    """Opens the ``sockets`` idle sockets and sends them one broadcast; while it does not reach
    every open socket, closes them all and opens them afresh (up to RELAY_CHECKS times). Returns
    how the last opening went and how many it took."""
    for attempt in range(1, RELAY_CHECKS + 1):
        connected = fleet.connect(parse_ws_url(target.idle_url), sockets, timeout=60 + sockets / 500)
        log(f"{connected.opened} opened in {connected.seconds:.1f} s"
            + (f", failures {connected.failures} e.g. {connected.examples}" if connected.failures else ""))
        delivered = _broadcast(target, fleet, ["relay-check"], plan, connected.opened)["delivered"]
        open_now = fleet.open_sockets()
        if delivered >= open_now or attempt == RELAY_CHECKS:
            return connected, attempt
        log(f"a broadcast reached {delivered} of the {open_now} open sockets: opening them afresh")
        fleet.close_all()
    raise AssertionError("unreachable: the last attempt always returns")


def _with_fleet(target: Target, fleet: Fleet, sockets: int, plan: Plan, baseline: dict[str, Memory],
                log: Log) -> dict[str, Any]:
    connected, openings = _connect_relayed(target, fleet, sockets, plan, log)
    log(f"holding them {plan.hold:g} s")
    time.sleep(plan.hold)
    held = fleet.open_sockets()
    loaded = target.memory()
    result: dict[str, Any] = {
        "target": target.name,
        "sockets": sockets,
        "connect": {"opened": connected.opened, "failures": connected.failures, "examples": connected.examples,
                    "seconds": connected.seconds, "openings": openings},
        "held": held,
        "memory": _memory(baseline, loaded, held),
    }
    log(f"{held} held; KiB/socket: {result['memory']['kib_per_socket']}")
    result["echo"] = _echo(target, plan)
    log(f"echo RTT ms: {_rounded(result['echo']['rtt_ms'])}")
    result["broadcasts"] = [_broadcast(target, fleet, [f"single{i}"], plan, held) for i in range(plan.broadcasts)]
    result["burst"] = _broadcast(target, fleet, [f"burst{i}" for i in range(plan.burst)], plan, held)
    singles = ", ".join(f"{b['last_ms']:.0f}" for b in result["broadcasts"] if b["last_ms"] is not None)
    log(f"broadcast to all, last delivery ms: {singles}; burst of {plan.burst}: "
        f"{result['burst']['last_ms']} ms, {result['burst']['deliveries_per_s']} deliveries/s")
    return result


def _memory(baseline: dict[str, Memory], loaded: dict[str, Memory], held: int) -> dict[str, Any]:
    per_socket = {name: round((loaded[name] - baseline[name]).rss_kib / held, 2) if held else None
                  for name in loaded}
    return {
        "baseline_kib": {name: vars(memory) for name, memory in baseline.items()},
        "loaded_kib": {name: vars(memory) for name, memory in loaded.items()},
        "kib_per_socket": per_socket,
    }


def _echo(target: Target, plan: Plan) -> dict[str, Any]:
    report = run_testecho(target.echo_url, plan.echo_clients, plan.echo_delay, processes=1, out=io.StringIO(),
                          progress=False)
    return {"clients": report.clients, "completed": report.completed, "failures": report.failures,
            "replies": report.replies, "rtt_ms": report.rtt_ms}


def _broadcast(target: Target, fleet: Fleet, tags: list[str], plan: Plan, sockets: int) -> dict[str, Any]:
    """Publishes one message per tag back to back; returns when the last socket had the last one."""
    stamps = []
    for tag in tags:
        stamps.append(time.monotonic())
        target.publish(broadcast_text(tag, stamps[-1]))
    latencies = fleet.expect(tags, plan.delivery_timeout)
    delivered = sum(len(values) for values in latencies.values())
    ends = [stamp + max(latencies[tag]) for tag, stamp in zip(tags, stamps, strict=True) if latencies[tag]]
    last = (max(ends) - stamps[0]) if ends else None
    every = array("d", (value for values in latencies.values() for value in values))
    return {
        "messages": len(tags),
        "expected": sockets * len(tags),
        "delivered": delivered,
        "last_ms": round(last * 1000, 2) if last is not None else None,
        "deliveries_per_s": round(delivered / last) if last else None,
        "latency_ms": _rounded(latency_summary(list(every))),
    }


def _rounded(values: dict[str, float | None]) -> dict[str, float | None]:
    return {key: (round(value, 3) if value is not None and math.isfinite(value) else None)
            for key, value in values.items()}
