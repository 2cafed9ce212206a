"""The measurements for one target at one socket count N:

1. hold N idle sockets through nginx (opened, failures, connect time, still open after the hold,
   the CPU the processes used meanwhile);
2. memory per idle socket: server processes, nginx and the load clients, each against its own
   baseline, and the kernel's (TCP buffers and unreclaimable slab, machine-wide);
3. echo round trip percentiles (the testecho transcript) while the N sockets idle;
4. single broadcasts to all N: time to the last delivery, deliveries per second, CPU per delivery
   of the server, nginx and the load clients (utime + stime from /proc/<pid>/stat, read right
   before the publish and once the last socket has the message);
5. a burst of back-to-back broadcasts: the same, until every socket has all of them.

Every step is bounded in time; what did not arrive in time is reported as missing.

Before anything is measured, one broadcast must reach every socket: first a few warm-up sockets
(first-use costs are then neither timed nor counted), then the N sockets themselves. A server
process whose subscription to the broadcast channel never took would otherwise leave its sockets
waiting out every delivery timeout, and the figures would describe that, not the server.
"""
from __future__ import annotations

import io
import math
import os
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from workers.testecho import latency_summary, run_testecho
from workers.wsload import parse_ws_url

from .fleet import ConnectResult, Fleet, broadcast_text
from .machine import cpu_sample, cpu_seconds_between, kernel_memory_kib
from .memory import Memory, memory_by_part, memory_of
from .targets import Target

Log = Callable[[str], None]
# Enough to reach every server worker process, a few times over if need be; never more than N:
# the stack is sized for N (deploy/sizing.py).
WARM_UP_SOCKETS = 200
WARM_UP_ROUNDS = 3
STARTS = 3
# Times the N sockets are opened afresh when a broadcast does not reach every one of them.
RELAY_CHECKS = 3
# A broadcast's wait is given at least one second per this many sockets (100 s at 200,000).
SOCKETS_PER_SECOND_OF_WAIT = 2_000


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

    plan = replace(plan, delivery_timeout=max(plan.delivery_timeout, sockets / SOCKETS_PER_SECOND_OF_WAIT))
    before = kernel_memory_kib()
    for start in range(1, STARTS + 1):
        note("starting" + (f" (attempt {start})" if start > 1 else ""))
        try:
            target.start()  # inside the try: a half-started target is stopped too
            with Fleet.for_sockets(sockets) as fleet:
                try:
                    warm_up_rounds = _warm_up(target, fleet, min(WARM_UP_SOCKETS, sockets), plan, note)
                except RuntimeError as exc:
                    if start == STARTS:
                        raise
                    note(f"{exc}: starting afresh")
                    continue
                baseline = _memory_now(target, fleet)
                result = _with_fleet(target, fleet, sockets, plan, baseline, note)
                result["kernel_kib"]["before"] = before
                result.update(starts=start, warm_up_rounds=warm_up_rounds)
                fleet.close_all()
            return result
        finally:
            target.stop()
    raise AssertionError("unreachable: the last start always measures")


def _warm_up(target: Target, fleet: Fleet, count: int, plan: Plan, log: Log) -> int:
    """Opens, feeds and closes a few sockets until every one of them gets a broadcast, so
    first-use costs (imports, Redis connections, buffers) are neither timed nor counted as memory
    per socket. Returns the rounds it took; raises RuntimeError after WARM_UP_ROUNDS."""
    for round_ in range(1, WARM_UP_ROUNDS + 1):
        opened = fleet.connect(parse_ws_url(target.idle_url), count, timeout=60).opened
        delivered = _broadcast(target, fleet, ["warm-up"], replace(plan, delivery_timeout=10), opened)["delivered"]
        fleet.close_all()
        if opened == delivered == count:
            time.sleep(1)
            return round_
        log(f"warm-up round {round_}: {opened} of {count} sockets opened, {delivered} got the broadcast")
    raise RuntimeError(f"warm-up: in the last of {WARM_UP_ROUNDS} rounds {opened} of {count} sockets "
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


def _memory_now(target: Target, fleet: Fleet) -> tuple[dict[str, Memory], dict[str, int]]:
    """Returns the memory of the target's parts and of the load clients, and the kernel's."""
    return {**memory_by_part(target.pids()), "clients": memory_of(fleet.pids)}, kernel_memory_kib()


def _cpu_parts(target: Target, fleet: Fleet) -> dict[str, list[int]]:
    """Returns the processes whose CPU is counted: the server's, nginx's and the load clients'."""
    parts = {part: pids for part, pids in target.pids().items() if part in ("server", "nginx")}
    return {**parts, "clients": fleet.pids}


def _with_fleet(target: Target, fleet: Fleet, sockets: int, plan: Plan,
                baseline: tuple[dict[str, Memory], dict[str, int]], log: Log) -> dict[str, Any]:
    connected, openings = _connect_relayed(target, fleet, sockets, plan, log)
    log(f"holding them {plan.hold:g} s")
    cpu = _cpu_parts(target, fleet)
    hold_started, hold_cpu = time.monotonic(), {part: cpu_sample(pids) for part, pids in cpu.items()}
    time.sleep(plan.hold)
    held = fleet.open_sockets()
    hold_cpu_s = _cpu_since(hold_cpu, cpu)
    hold_seconds = time.monotonic() - hold_started
    loaded = _memory_now(target, fleet)
    result: dict[str, Any] = {
        "target": target.name,
        "sockets": sockets,
        "connect": {"opened": connected.opened, "failures": connected.failures, "examples": connected.examples,
                    "seconds": connected.seconds, "openings": openings, "closed_during_hold": connected.opened - held},
        "held": held,
        "processes": {part: len(pids) for part, pids in cpu.items()},
        "loadavg_after_hold": round(os.getloadavg()[0], 2),
        "hold_cpu_pct": {part: round(100 * seconds / hold_seconds, 1) if hold_seconds else None
                         for part, seconds in hold_cpu_s.items()},
        "memory": _memory(baseline[0], loaded[0], held),
        "kernel_kib": {"baseline": baseline[1], "loaded": loaded[1],
                       "per_socket": _kernel_per_socket(baseline[1], loaded[1], held)},
    }
    log(f"{held} held; KiB/socket: {result['memory']['kib_per_socket']}, kernel "
        f"{result['kernel_kib']['per_socket']}; CPU % while holding: {result['hold_cpu_pct']}")
    result["echo"] = _echo(target, plan)
    log(f"echo RTT ms: {_rounded(result['echo']['rtt_ms'])}")
    result["broadcasts"] = [_broadcast(target, fleet, [f"single{i}"], plan, held, cpu) for i in range(plan.broadcasts)]
    result["burst"] = _broadcast(target, fleet, [f"burst{i}" for i in range(plan.burst)], plan, held, cpu)
    singles = ", ".join(f"{b['last_ms']:.0f}" for b in result["broadcasts"] if b["last_ms"] is not None)
    log(f"broadcast to all, last delivery ms: {singles}; burst of {plan.burst}: "
        f"{result['burst']['last_ms']} ms, {result['burst']['deliveries_per_s']} deliveries/s; CPU µs per "
        f"delivery: {result['broadcasts'][-1]['cpu_us_per_delivery']}, burst {result['burst']['cpu_us_per_delivery']}")
    return result


def _cpu_since(before: dict[str, dict[int, int]], parts: dict[str, list[int]]) -> dict[str, float]:
    """Returns the CPU seconds each part's processes used since the samples ``before``."""
    return {part: cpu_seconds_between(before[part], cpu_sample(pids)) for part, pids in parts.items()}


def cpu_per_delivery(cpu_seconds: dict[str, float], delivered: int) -> dict[str, float | None]:
    """Returns the CPU µs per delivery of each part, and of the server and nginx together."""
    parts = dict(cpu_seconds)
    if "server" in parts and "nginx" in parts:
        parts["server+nginx"] = parts["server"] + parts["nginx"]
    return {part: round(seconds * 1e6 / delivered, 2) if delivered else None for part, seconds in parts.items()}


def _kernel_per_socket(baseline: dict[str, int], loaded: dict[str, int], held: int) -> float | None:
    """Returns the kernel's memory per socket held: TCP buffers and unreclaimable slab, machine-wide."""
    if not held:
        return None
    grown = sum(loaded[name] - baseline[name] for name in ("tcp_buffers", "slab_unreclaimable"))
    return round(grown / held, 2)


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


def _broadcast(target: Target, fleet: Fleet, tags: list[str], plan: Plan, sockets: int,
               cpu: dict[str, list[int]] | None = None) -> dict[str, Any]:
    """Publishes one message per tag back to back; returns when the last socket had the last one,
    with the CPU the ``cpu`` parts' processes used meanwhile."""
    cpu = cpu or {}
    cpu_before = {part: cpu_sample(pids) for part, pids in cpu.items()}
    window_started = time.monotonic()
    stamps = []
    for tag in tags:
        stamps.append(time.monotonic())
        target.publish(broadcast_text(tag, stamps[-1]))
    latencies = fleet.expect(tags, plan.delivery_timeout)
    cpu_seconds = _cpu_since(cpu_before, cpu)
    window = time.monotonic() - window_started
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
        # The CPU counted over window_s seconds; hold_cpu_pct says what idling alone costs meanwhile.
        "cpu_s": {part: round(seconds, 3) for part, seconds in cpu_seconds.items()},
        "window_s": round(window, 3),
        "cpu_us_per_delivery": cpu_per_delivery(cpu_seconds, delivered),
    }


def _rounded(values: dict[str, float | None]) -> dict[str, float | None]:
    return {key: (round(value, 3) if value is not None and math.isfinite(value) else None)
            for key, value in values.items()}
