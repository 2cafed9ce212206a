"""Plots of a benchmark run: latencies, memory per socket and CPU per delivery against the number
of idle sockets."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from .report import _median_cpu, _single_last_ms  # noqa: E402


def _series(results: list[dict[str, Any]], value: Any) -> dict[str, tuple[list[int], list[float]]]:
    """Returns target → (N values, figures) for the rows where ``value(row)`` is known."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for row in results:
        if "held" not in row:  # failed or not run
            continue
        figure = value(row)
        if figure is None:
            continue
        xs, ys = series.setdefault(row["target"], ([], []))
        xs.append(row["sockets"])
        ys.append(figure)
    return series


def draw(run: dict[str, Any], path: Path) -> Path:
    """Draws the run's four panels into ``path`` (PNG) and returns it."""
    results = run["results"]
    figure, (echo_axes, broadcast_axes, memory_axes, cpu_axes) = plt.subplots(1, 4, figsize=(21, 4.8))
    for name, (xs, ys) in _series(results, lambda row: row["echo"]["rtt_ms"]["p50"]).items():
        echo_axes.plot(xs, ys, "o-", label=f"{name} p50")
    for name, (xs, ys) in _series(results, lambda row: row["echo"]["rtt_ms"]["p99"]).items():
        echo_axes.plot(xs, ys, "s--", label=f"{name} p99")
    echo_axes.set(title="Echo round trip with N idle sockets", ylabel="ms")

    for name, (xs, ys) in _series(results, _single_last_ms).items():
        broadcast_axes.plot(xs, ys, "o-", label=f"{name}: 1 message")
    for name, (xs, ys) in _series(results, lambda row: row["burst"]["last_ms"]).items():
        broadcast_axes.plot(xs, ys, "s--", label=f"{name}: burst of {run['plan']['burst']}")
    broadcast_axes.set(title="Broadcast to all N: last delivery", ylabel="ms")

    for part, style in (("server", "o-"), ("nginx", "s--")):
        series = _series(results, lambda row, part=part: row["memory"]["kib_per_socket"].get(part))
        for name, (xs, ys) in series.items():
            memory_axes.plot(xs, ys, style, label=f"{name} {part}")
    memory_axes.set(title="Memory per idle socket (RSS)", ylabel="KiB")

    for label, style, value in (
            ("1 message", "o-", lambda row: _median_cpu(row["broadcasts"])),
            (f"burst of {run['plan']['burst']}", "s--", lambda row: _median_cpu([row["burst"]])),
            ("1 message, load clients", "^:", lambda row: _median_cpu(row["broadcasts"], "clients"))):
        for name, (xs, ys) in _series(results, value).items():
            cpu_axes.plot(xs, ys, style, label=f"{name}: {label}")
    cpu_axes.set(title="CPU per delivery: server + nginx", ylabel="µs (log scale)")

    for axes in (echo_axes, broadcast_axes, memory_axes, cpu_axes):
        axes.set_xscale("log")
        axes.set_xlabel("N idle sockets")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize="small")
        if axes is cpu_axes:
            axes.set_yscale("log")
        else:
            axes.set_ylim(bottom=0)
    machine = run["machine"]
    figure.suptitle(f"{machine['cpu']}, {machine['cores']} cores, client and servers on the same machine "
                    f"({run['started']})", fontsize="medium")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
