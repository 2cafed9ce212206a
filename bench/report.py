"""The benchmark's results as a Markdown table with the machine stated, plus ratios to the peer."""
from __future__ import annotations

import statistics
from typing import Any

# Below this share of N held, a target has reached what the machine allows at that N.
HELD_ENOUGH = 0.95


def _number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _single_last_ms(row: dict[str, Any]) -> float | None:
    values = [b["last_ms"] for b in row.get("broadcasts", []) if b["last_ms"] is not None]
    return statistics.median(values) if values else None


def _single_rate(row: dict[str, Any]) -> float | None:
    values = [b["deliveries_per_s"] for b in row.get("broadcasts", []) if b["deliveries_per_s"]]
    return statistics.median(values) if values else None


def _cpu(broadcasts: list[dict[str, Any]]) -> str:
    """Returns "server + nginx = both (clients)" CPU µs per delivery of the broadcast whose server +
    nginx figure is the median of ``broadcasts`` (so the parts add up)."""
    measured = sorted((b["cpu_us_per_delivery"] for b in broadcasts
                       if b.get("cpu_us_per_delivery", {}).get("server+nginx") is not None),
                      key=lambda cpu: cpu["server+nginx"])
    if not measured:
        return "–"
    cpu = measured[(len(measured) - 1) // 2]
    return (f"{_number(cpu['server'], 1)} + {_number(cpu['nginx'], 1)} = {_number(cpu['server+nginx'], 1)} "
            f"({_number(cpu.get('clients'), 1)})")


def _median_cpu(broadcasts: list[dict[str, Any]], part: str = "server+nginx") -> float | None:
    """Returns the median CPU µs per delivery of ``part`` over ``broadcasts``, if measured."""
    values = [b["cpu_us_per_delivery"][part] for b in broadcasts
              if b.get("cpu_us_per_delivery", {}).get(part) is not None]
    return statistics.median(values) if values else None


def _failures(row: dict[str, Any]) -> str:
    """Returns the sockets that failed to open or closed during the hold: "0", or the count and kinds."""
    kinds = dict(row["connect"]["failures"])
    if row["connect"].get("closed_during_hold"):
        kinds["closed during the hold"] = row["connect"]["closed_during_hold"]
    total = sum(kinds.values())
    return f"{total:,} ({', '.join(f'{kind} {count:,}' for kind, count in kinds.items())})" if total else "0"


def _shortfall(broadcasts: list[dict[str, Any]]) -> str:
    """Returns " (x of y delivered)" for the worst of ``broadcasts`` that missed sockets, else "":
    a time to the last delivery only means something next to how many arrived."""
    short = [b for b in broadcasts if b["delivered"] < b["expected"]]
    if not short:
        return ""
    worst = min(short, key=lambda b: b["delivered"] / max(1, b["expected"]))
    return f" ({worst['delivered']:,} of {worst['expected']:,} delivered)"


def table(results: list[dict[str, Any]]) -> list[str]:
    """Returns one Markdown table row per (target, N), under a header."""
    header = ["target", "N", "held", "failures", "connect s", "server KiB/socket", "nginx KiB/socket",
              "client KiB/socket", "kernel KiB/socket", "broadcast: last delivery ms (median of 3)", "deliveries/s",
              "CPU µs/delivery (median of 3): server + nginx = both (clients)", "burst of 10: last delivery ms",
              "burst deliveries/s", "burst CPU µs/delivery", "echo RTT p50 / p99 ms"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for row in results:
        if "error" in row or "skipped" in row:
            what = f"failed: {row['error']}" if "error" in row else f"not run: {row['skipped']}"
            lines.append(f"| {row['target']} | {row['sockets']:,} | {what} |" + " |" * (len(header) - 3))
            continue
        memory = row["memory"]["kib_per_socket"]
        echo = row["echo"]["rtt_ms"]
        burst = row["burst"]
        lines.append(
            f"| {row['target']} | {row['sockets']:,} | {row['held']:,} | {_failures(row)} "
            f"| {row['connect']['seconds']:.1f} | {_number(memory.get('server'), 1)} "
            f"| {_number(memory.get('nginx'), 1)} "
            f"| {_number(memory.get('clients'), 1)} | {_number(row.get('kernel_kib', {}).get('per_socket'), 1)} "
            f"| {_number(_single_last_ms(row))}{_shortfall(row['broadcasts'])} | {_number(_single_rate(row))} "
            f"| {_cpu(row['broadcasts'])} "
            f"| {_number(burst['last_ms'])}{_shortfall([burst])} | {_number(burst['deliveries_per_s'])} "
            f"| {_cpu([burst])} | {_number(echo['p50'], 2)} / {_number(echo['p99'], 2)} |")
    return lines


def ratios(results: list[dict[str, Any]], ours: str = "ws4redis") -> list[str]:
    """Returns one line per N and peer: how ``ours`` compares (above 1 means ours is better)."""
    # A target that held fewer sockets than asked has no comparable figures at that N.
    by_key = {(row["target"], row["sockets"]): row for row in results
              if "held" in row and row["held"] >= HELD_ENOUGH * row["sockets"]}
    lines = []
    for (name, sockets), peer in sorted(by_key.items(), key=lambda item: (item[0][1], item[0][0])):
        mine = by_key.get((ours, sockets))
        if name in (ours, "external") or mine is None:  # external: the same server, run elsewhere
            continue
        parts = []
        # A peer whose burst did not arrive in full took longer than its last delivery: at least.
        burst_label = "burst speed" + (" ≥" if peer["burst"]["delivered"] < peer["burst"]["expected"] else " ")
        pairs = [
            ("broadcast speed ", _single_last_ms(peer), _single_last_ms(mine)),
            (burst_label, peer["burst"]["last_ms"], mine["burst"]["last_ms"]),
            ("server memory ", peer["memory"]["kib_per_socket"].get("server"),
             mine["memory"]["kib_per_socket"].get("server")),
            ("echo p50 ", peer["echo"]["rtt_ms"]["p50"], mine["echo"]["rtt_ms"]["p50"]),
        ]
        pairs.append(("CPU per delivery ", _median_cpu(peer["broadcasts"]), _median_cpu(mine["broadcasts"])))
        for label, theirs, own in pairs:
            if theirs and own and theirs > 0 and own > 0:
                parts.append(f"{label}×{theirs / own:.1f}")
        if parts:
            lines.append(f"- N={sockets:,}: {ours} vs {name}: " + ", ".join(parts))
    return lines


def markdown(run: dict[str, Any]) -> str:
    """Returns the results file's Markdown: machine, load, table, ratios."""
    machine = run["machine"]
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    lines = [
        f"Measured {run['started']} on {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"Linux {machine['kernel']}, Python {machine['python']}, {machine.get('nginx', 'nginx')}, "
        f"{machine.get('redis', 'Redis')}; {packages}.",
        f"Client and servers share the machine. Other work used {run['background_busy_pct']:.0f} % of the "
        f"CPUs just before the run (load average {machine['loadavg_at_start'][0]:.2f}). "
        f"Idle sockets were held {run['plan']['hold']:g} s before measuring memory; the echo RTT comes from "
        f"{run['plan']['echo_clients']} testecho clients while the N sockets idle. CPU per delivery is the "
        f"utime + stime of the server's processes, nginx's and the load clients' from just before the publish "
        f"until the last socket had the message, over the deliveries; kernel memory is machine-wide (TCP "
        f"buffers and unreclaimable slab).",
        "",
        *table(run["results"]),
    ]
    reopened = [f"{row['target']} N={row['sockets']:,}: {row['connect']['openings']} times" for row in run["results"]
                if row.get("connect", {}).get("openings", 1) > 1]
    if reopened:
        lines += ["", "The N sockets were opened afresh because a first broadcast did not reach them all: "
                  + "; ".join(reopened) + "."]
    processes = [f"{row['target']} N={row['sockets']:,}: " + " / ".join(map(str, row["processes"].values()))
                 for row in run["results"] if "processes" in row]
    loads = [row["loadavg_after_hold"] for row in run["results"] if "loadavg_after_hold" in row]
    if loads:
        lines += ["", f"Load average (1 min) at the end of each hold: {min(loads):.1f} to {max(loads):.1f} "
                  f"(this run's own processes included)."]
    if processes:
        lines += ["", "Processes (uWSGI master and workers or daphne processes / nginx master and workers / load "
                  "clients), sized from the file limit: "
                  + "; ".join(processes) + "."]
    extra = ratios(run["results"])
    if extra:
        lines += ["", "Ratios (peer ÷ ws4redis for times and memory: above 1 means ws4redis is faster or smaller):",
                  *extra]
    return "\n".join(lines) + "\n"
