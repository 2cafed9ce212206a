"""``python -m bench.gameoflife`` (also ``python -m bench gameoflife``): the distributed Game of Life
unthrottled on 32×32, 64×64 and 128×128 grids (1,024 to 16,384 sockets, one per cell) through
nginx and uWSGI: generations per second, the WebSocket server's memory, and the CPU each part of
the system spends per cell and generation (a cell update: one frame in, one frame of its
neighbours' states out), per frame delivered to a cell and per state relayed.

The cells run in several processes (``--processes``; by default two, or one per
workers.gameoflife.CELLS_PER_PROCESS cells if more), so that no single client process is the
limit: the busiest one's share of a core is printed with the figures.

    python -m bench.gameoflife                              # a fresh stack per size (deploy.stack)
    python -m bench.gameoflife --sizes 32 --seconds 10      # a quick look
    python -m bench.gameoflife --url ws://127.0.0.1:8000    # a running site: rates only

Writes bench/results/gameoflife-<time>.json, .md (the table) and .png. Figures, not assertions.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from workers.gameoflife import GameError, check_processes, default_processes, new_game
from workers.patterns import random_grid

from .machine import busy_percent, cpu_sample, cpu_seconds_between, describe
from .memory import Memory, memory_of, with_children
from .targets import Ws4RedisStack

RESULTS = Path(__file__).resolve().parent / "results"
WARM_UP = 2  # generations left out of the rate: the first ones start while cells still connect
START_TIMEOUT = 300.0  # seconds for a run to connect and start its cells
SETTLE = 3.0  # seconds a new stack gets before the cells connect: its workers connect to Redis


def cpu_seconds(pids: list[int]) -> float:
    """Returns the user + system CPU seconds used so far by ``pids`` (those gone count zero)."""
    return cpu_seconds_between({}, cpu_sample(pids))


class Parts:
    """The processes of a stack started here, by part, and those of the cells (this one and
    the cell processes)."""

    def __init__(self, target: Ws4RedisStack | None) -> None:
        self.target = target
        self.cell_pids: list[int] = [os.getpid()]

    def pids(self) -> dict[str, list[int]]:
        if self.target is None or self.target.stack is None:
            return {}
        stack, redis_server = self.target.stack, self.target.redis_server
        return {
            "uwsgi": with_children(stack.pid_of("websocket")),
            "nginx": with_children(stack.nginx.pid) if stack.nginx else [],
            "redis": [redis_server.process.pid] if redis_server and redis_server.process else [],
        }

    def cpu(self) -> dict[str, float]:
        """Returns the CPU seconds used so far by each part, and by each cells' process (as
        "cells <pid>")."""
        seconds = {part: cpu_seconds(pids) for part, pids in self.pids().items()}
        for pid in self.cell_pids:
            seconds[f"cells {pid}"] = cpu_seconds([pid])
        seconds["cells"] = sum(seconds[f"cells {pid}"] for pid in self.cell_pids)
        return seconds

    def uwsgi_memory(self) -> Memory | None:
        """The WebSocket instance's memory (master and workers)."""
        pids = self.pids().get("uwsgi")
        return memory_of(pids) if pids else None


async def measure(url: str, size: int, seconds: float, parts: Parts, seed: int, processes: int) -> dict[str, Any]:
    """Runs size × size cells unthrottled on ``processes`` processes for ``seconds`` once
    started; returns the figures."""
    game = new_game(url, random_grid(size, seed), wrap=True, steps=None, speed=None,
                    log=lambda line: print(f"    {line}", flush=True), processes=processes)
    idle = parts.uwsgi_memory()
    play = asyncio.create_task(game.play())
    progress = game.progress
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while len(progress.completed) <= WARM_UP:
            if play.done():
                play.result()  # raises what stopped the run
                raise GameError("the run ended before it started")
            if time.monotonic() > deadline:
                raise GameError(f"the run did not start within {START_TIMEOUT:.0f}s")
            await asyncio.sleep(0.05)
        parts.cell_pids = game.pids()
        first, cpu_before, frames_before, states_before = (
            len(progress.completed) - 1, parts.cpu(), progress.frames, progress.states)
        clock_before = time.monotonic()
        await asyncio.wait({play}, timeout=seconds)
        if play.done():
            play.result()
        last, cpu_after, frames, states = (
            len(progress.completed) - 1, parts.cpu(), progress.frames - frames_before, progress.states - states_before)
        wall = time.monotonic() - clock_before
        loaded = parts.uwsgi_memory()
    finally:
        play.cancel()
        await asyncio.gather(play, return_exceptions=True)
    generations = last - first
    elapsed = progress.completed[last] - progress.completed[first]
    cell_generations = size * size * max(1, generations)
    used = {part: cpu_after[part] - cpu_before[part] for part in cpu_after}
    server = used.get("uwsgi", 0.0) + used.get("nginx", 0.0)
    total = sum(used[part] for part in ("uwsgi", "nginx", "redis", "cells") if part in used)
    result: dict[str, Any] = {
        "size": size,
        "sockets": size * size,
        "cell_processes": len(parts.cell_pids) - (len(parts.cell_pids) > 1),  # the leader has none
        "generations": generations,
        "seconds": round(elapsed, 2),
        "generations_per_s": round(generations / elapsed, 2) if elapsed > 0 else 0.0,
        "cell_updates_per_s": round(size * size * generations / elapsed) if elapsed > 0 else 0,
        "connect_s": round(progress.connected_at - progress.began_at, 2),
        "start_s": round(progress.completed[0] - progress.began_at, 2),
        "cpu_us_per_cell_generation": {
            part: round(1e6 * used[part] / cell_generations, 1) for part in ("uwsgi", "nginx", "redis", "cells")
            if part in used},
        "frames_delivered": frames,
        "states_relayed": states,
        "frames_per_cell_generation": round(frames / cell_generations, 2),
        "cells_busiest_core_percent": round(100 * max(
            used[f"cells {pid}"] for pid in parts.cell_pids) / wall, 1) if wall > 0 else 0.0,
        "cells_cpu_share_percent": round(100 * used["cells"] / total, 1) if total > 0 else 0.0,
    }
    if server and frames and states:
        # The WebSocket server's CPU (uWSGI's WebSocket workers and nginx) per update, per frame a
        # cell received and per neighbour's state relayed to a cell.
        result["server_cpu_us_per_update"] = round(1e6 * server / cell_generations, 1)
        result["server_cpu_us_per_frame"] = round(1e6 * server / frames, 1)
        result["server_cpu_us_per_state"] = round(1e6 * server / states, 2)
    if idle is not None and loaded is not None:
        # PSS counts the pages the workers share with their master once: the memory they cost.
        result["uwsgi_rss_mib"] = round(loaded.rss_kib / 1024, 1)
        result["uwsgi_pss_mib"] = round(loaded.pss_kib / 1024, 1)
        result["uwsgi_pss_kib_per_socket"] = round((loaded.pss_kib - idle.pss_kib) / (size * size), 1)
    return result


def run_size(size: int, args: argparse.Namespace) -> dict[str, Any]:
    """Measures one size on the site at ``--url``, or on a stack of its own."""
    target = None
    if args.url is None:
        target = Ws4RedisStack(size * size + 64)  # sized as make run sizes it (deploy/sizing.py)
        target.start()
        time.sleep(SETTLE)
    try:
        url = args.url or target.base_url  # type: ignore[union-attr]
        load, before = busy_percent(1.0), os.getloadavg()[0]
        processes = args.processes or max(2, default_processes(size * size))
        result = asyncio.run(measure(url, size, args.seconds, Parts(target), args.seed, processes))
        if target is not None and target.stack is not None:
            result["ws_workers"], result["nginx_workers"] = target.stack.ws_workers, target.stack.nginx_workers
        result["machine_busy_percent_before"] = round(load, 1)
        # The machine may be shared: other work takes cores from the run (and inflates its CPU).
        result["loadavg_1min"] = [round(before, 1), round(os.getloadavg()[0], 1)]
        return result
    except GameError as exc:
        return {"size": size, "sockets": size * size, "error": str(exc)}
    finally:
        if target is not None:
            target.stop()


def table(results: list[dict[str, Any]]) -> list[str]:
    """Returns the results as a Markdown table."""
    lines = ["| grid | sockets | workers: WebSocket / nginx | generations/s | cell updates/s "
             "| uWSGI RSS / PSS MiB | uWSGI PSS KiB/socket "
             "| CPU µs per cell and generation: uWSGI / nginx / Redis / cells "
             "| server (uWSGI + nginx) CPU µs per update / per frame delivered / per state relayed "
             "| cell processes: count, busiest % of a core, cells' share of the CPU "
             "| load average (1 min) before / after |",
             "|---|---:|---|---:|---:|---:|---:|---|---|---|---|"]
    for row in results:
        grid = f"{row['size']}×{row['size']}"
        if "error" in row:
            lines.append(f"| {grid} | {row['sockets']:,} | | failed: {row['error']} | | | | | | | |")
            continue
        cpu = row["cpu_us_per_cell_generation"]
        server = " / ".join(str(row.get(f"server_cpu_us_per_{unit}", "–")) for unit in ("update", "frame", "state"))
        lines.append(
            f"| {grid} | {row['sockets']:,} | {row.get('ws_workers', '–')} / {row.get('nginx_workers', '–')} "
            f"| {row['generations_per_s']:.1f} | {row['cell_updates_per_s']:,} "
            f"| {row.get('uwsgi_rss_mib', '–')} / {row.get('uwsgi_pss_mib', '–')} "
            f"| {row.get('uwsgi_pss_kib_per_socket', '–')} "
            f"| {' / '.join(str(cpu.get(part, '–')) for part in ('uwsgi', 'nginx', 'redis', 'cells'))} "
            f"| {server} "
            f"| {row['cell_processes']}, {row['cells_busiest_core_percent']} %, {row['cells_cpu_share_percent']} % "
            f"| {' / '.join(str(load) for load in row.get('loadavg_1min', ()))} |")
    return lines


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Draws generations per second and the CPU split per grid size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in results if "error" not in row]
    if not rows:
        return
    labels = [f"{row['size']}×{row['size']}" for row in rows]
    figure, (rates, cpu) = plt.subplots(1, 2, figsize=(11, 4))
    rates.bar(labels, [row["generations_per_s"] for row in rows], color="#2f6fde")
    rates.set_title("Generations per second (unthrottled)")
    bottom = [0.0] * len(rows)
    for part, colour in (("uwsgi", "#2f6fde"), ("nginx", "#7aa95c"), ("redis", "#d1495b"), ("cells", "#edae49")):
        values = [row["cpu_us_per_cell_generation"].get(part, 0.0) for row in rows]
        cpu.bar(labels, values, bottom=bottom, label=part, color=colour)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    cpu.set_title("CPU µs per cell and generation")
    cpu.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gameoflife", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="32,64,128",
                        help="grid sides, comma-separated (default 32,64,128)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="how long each size runs once started (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random grids (default 1)")
    parser.add_argument("--url", help="a running site (ws://host:port) instead of a stack of its own")
    parser.add_argument("--processes", type=int,
                        help="cell processes (default: 2, or one per CELLS_PER_PROCESS cells if more; "
                             "1: the cells run in this process)")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes: expected grid sides like 32,64 (got {args.sizes!r})")
    if not all(1 <= size <= 128 for size in args.sizes):
        parser.error("--sizes: from 1 to 128 (16,384 sockets fit in one process's files)")
    if not 1 <= args.seconds <= 600:
        parser.error("--seconds: from 1 to 600")
    if args.processes is not None:
        for size in args.sizes:
            try:
                check_processes(args.processes, size * size)
            except GameError as exc:
                parser.error(f"{exc} (grid {size}×{size})")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    machine = describe()
    print(f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
          f"load average {', '.join(f'{value:.1f}' for value in machine['loadavg_at_start'])}", flush=True)
    results = []
    for size in args.sizes:
        print(f"{size}×{size} ({size * size:,} sockets), unthrottled, {args.seconds:.0f}s:", flush=True)
        results.append(run_size(size, args))
        print("\n".join(table(results[-1:])[2:]), flush=True)
    lines = table(results)
    print("\n" + "\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / time.strftime("gameoflife-%Y%m%d-%H%M%S")
    stem.with_suffix(".json").write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    stem.with_suffix(".md").write_text(
        f"Game of Life, unthrottled; {machine['cpu']}, {machine['cores']} cores, load average at start "
        f"{machine['loadavg_at_start'][0]:.1f}\n\n" + "\n".join(lines) + "\n")
    plot(results, stem.with_suffix(".png"))
    print(f"\nWritten: {stem}.json, .md, .png")


if __name__ == "__main__":
    main()
