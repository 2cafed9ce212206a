"""``python -m bench`` (``make bench``): how many idle sockets the stack holds through nginx, what
each costs in memory, how fast a broadcast reaches all of them and at what CPU cost per delivery,
and the echo round trip meanwhile, for the project's stack and for a Django Channels peer in the
same run.

    python -m bench                                   # N = 10,000, 30,000, 100,000, 200,000; both targets
    python -m bench --sizes 1000 --hold 5             # a quick look
    python -m bench --targets ws4redis,channels,channels-pubsub --peer-max 10000   # peers up to 10k
    python -m bench --url ws://127.0.0.1:8000 --targets external   # a stack that is already running
    python -m bench <suite> [args]                    # another suite: bench/<suite>.py's main(args)

Writes bench/results/bench-<time>.json, .md (the table) and .png (the plots), and copies the last
two to latest.md / latest.png. Figures, not assertions: nothing here fails on a slow machine.

Before a target starts at N, the memory it needs is estimated from what each socket cost the
machine at the previous N (bench.memory.memory_shortfall) and compared with MemAvailable: a run
that would not fit is recorded with the reason instead of driving the machine out of memory.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
MAX_SOCKETS = 200_000
DEFAULT_SIZES = "10000,30000,100000,200000"
TARGETS = ("ws4redis", "channels", "channels-pubsub", "external")


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(item.replace("_", "").replace(",", "")) for item in text.split(",") if item.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected socket counts like 1000,10000 (got {text!r})") from None
    if not sizes or sizes[0] < 1 or sizes[-1] > MAX_SOCKETS:
        raise argparse.ArgumentTypeError(f"socket counts must be between 1 and {MAX_SOCKETS:,}")
    return sizes


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=_sizes, default=_sizes(DEFAULT_SIZES),
                        help=f"idle socket counts N, comma-separated (default {DEFAULT_SIZES}, at most "
                             f"{MAX_SOCKETS:,})")
    parser.add_argument("--targets", default="ws4redis,channels",
                        help="comma-separated, among: ws4redis (the project's stack), channels (the Channels "
                             "peer, channels_redis core layer), channels-pubsub (its pub/sub layer), external "
                             "(the stack at --url); default ws4redis,channels")
    parser.add_argument("--hold", type=float, default=35.0,
                        help="seconds the idle sockets are held before memory is read (default 35: "
                             "one server ping cycle)")
    parser.add_argument("--peer-max", type=int, default=None, metavar="N",
                        help="largest socket count tried on the Channels peers (default: every --sizes)")
    parser.add_argument("--url", help="base ws:// URL of a running stack, for --targets external")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="the Redis of the --url stack (default $REDIS_URL or redis://127.0.0.1:6379/0)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results directory (default {RESULTS})")
    parser.add_argument("--no-plot", action="store_true", help="do not draw the PNG")
    args = parser.parse_args(argv)
    args.targets = [name.strip() for name in args.targets.split(",") if name.strip()]
    unknown = set(args.targets) - set(TARGETS)
    if unknown or not args.targets:
        parser.error(f"unknown target(s) {sorted(unknown)}: choose among {', '.join(TARGETS)}")
    if "external" in args.targets and not (args.url or "").startswith("ws://"):
        parser.error("--targets external needs --url ws://host:port of a running stack")
    if args.hold < 0:
        parser.error("--hold must be >= 0")
    if args.peer_max is not None and args.peer_max < 1:
        parser.error("--peer-max must be >= 1")
    return args


def _make_target(name: str, sockets: int, args: argparse.Namespace) -> Any:
    from .targets import ChannelsPeer, RunningStack, Ws4RedisStack

    if name == "ws4redis":
        return Ws4RedisStack(sockets)
    if name.startswith("channels"):
        return ChannelsPeer(sockets, layer="pubsub" if name == "channels-pubsub" else "core")
    return RunningStack(args.url, args.redis_url)


def _prepare_database() -> Path:
    """Gives the stacks started here a fresh SQLite database of their own; returns its directory."""
    from deploy.stack import manage

    directory = Path(tempfile.mkdtemp(prefix="ws4r-bench-"))
    os.environ["DATABASE_URL"] = f"sqlite:///{directory}/db.sqlite3"
    manage("migrate", "--noinput", "-v", "0")
    return directory


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Runs every (N, target) measurement, saving the results after each; returns the run."""
    database = _prepare_database() if set(args.targets) - {"external"} else None
    try:
        return _measure_all(args)
    finally:
        if database is not None:
            shutil.rmtree(database, ignore_errors=True)


def _measure_all(args: argparse.Namespace) -> dict[str, Any]:
    from . import machine, report
    from .memory import machine_kib_per_socket, memory_shortfall
    from .workloads import Plan

    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    plan = Plan(hold=args.hold)
    run_data: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine.describe(),
        "background_busy_pct": machine.busy_percent(3),
        "plan": vars(plan),
        "targets": args.targets,
        "results": [],
    }
    print(f"Other work is using {run_data['background_busy_pct']:.0f} % of the CPUs.", flush=True)
    limited: set[str] = set()
    cost: dict[str, float | None] = {}  # target → KiB per socket for the whole machine, last measured
    for sockets in args.sizes:
        for name in args.targets:
            if name in limited or (name.startswith("channels") and sockets > (args.peer_max or sockets)):
                continue
            available = machine.meminfo_kib()["MemAvailable"]
            shortfall = None if name == "external" else memory_shortfall(sockets, cost.get(name), available)
            if shortfall is not None:
                row = {"target": name, "sockets": sockets, "skipped": shortfall}
                print(f"[{name} N={sockets}] not run: {shortfall}", flush=True)
            else:
                row = _measure_one(name, sockets, args, plan)
                cost[name] = machine_kib_per_socket(row) or cost.get(name)
            run_data["results"].append(row)
            # A target that did not hold N, or would not fit, would not do better at a larger N.
            if "held" not in row or row["held"] < report.HELD_ENOUGH * sockets:
                limited.add(name)
            _save(run_data, args, stamp)
    text = report.markdown(run_data)
    print("\n" + text)
    return run_data


def _measure_one(name: str, sockets: int, args: argparse.Namespace, plan: Any) -> dict[str, Any]:
    from .workloads import measure

    target = _make_target(name, sockets, args)
    try:
        return measure(target, sockets, plan, log=lambda line: print(line, flush=True))
    except Exception as exc:  # one failed measurement must not lose the others
        print(f"[{target.name} N={sockets}] failed: {type(exc).__name__}: {exc}", flush=True)
        return {"target": target.name, "sockets": sockets, "error": f"{type(exc).__name__}: {exc}"}


def _save(run_data: dict[str, Any], args: argparse.Namespace, stamp: str) -> None:
    from . import report

    base = args.out / f"bench-{stamp}"
    base.with_suffix(".json").write_text(json.dumps(run_data, indent=2) + "\n")
    base.with_suffix(".md").write_text(report.markdown(run_data))
    shutil.copyfile(base.with_suffix(".md"), args.out / "latest.md")
    if not args.no_plot:
        from .plots import draw

        draw(run_data, base.with_suffix(".png"))
        shutil.copyfile(base.with_suffix(".png"), args.out / "latest.png")


def _stop_like_ctrl_c() -> None:
    """Makes SIGTERM (``kill``, a timeout) end the run as Ctrl-C does: every ``finally`` runs, so
    every server and load process started is stopped. A second SIGTERM does not cut that short."""
    def interrupt(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, lambda *_: None)
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    _stop_like_ctrl_c()
    if argv and not argv[0].startswith("-"):
        try:
            suite = importlib.import_module(f"bench.{argv[0]}")
        except ModuleNotFoundError:
            sys.exit(f"python -m bench: no suite named {argv[0]!r} (bench/{argv[0]}.py)")
        suite.main(argv[1:])
        return
    args = parse_args(argv)
    try:
        run(args)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the measurements' finally blocks have run
        print("python -m bench: interrupted; every server and load process it started is stopped",
              file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
