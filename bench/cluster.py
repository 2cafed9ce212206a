"""``python -m bench.cluster``: one Redis against a 3-primary Redis Cluster, the same load.

For each mode, a fresh Redis (one redis-server, or 3 primaries + 3 replicas from
``deploy/redis_ha.py``) and the site's stack on it (``deploy/stack.py``: nginx, uWSGI with
--workers WebSocket workers). --sockets sockets open through nginx over --channels broadcast
channels; each round publishes one message on every channel (``RedisPublisher``, from this
process) and waits until every socket has its channel's message. Figures per mode:

- broadcast time: from the round's first publish to its last delivery (median of the rounds);
- deliveries/s: the round's deliveries (one per socket) over that time;
- publishes/s: the channels over the time the publishing took (one script per channel);
- Redis pub/sub connections per WebSocket worker, per node (CLIENT LIST: connections with a
  (sharded) subscription, over the workers): one per primary on a Cluster, one on one server.

    python -m bench.cluster                       # 1,000 sockets, 100 channels, 5 rounds
    python -m bench.cluster --sockets 5000 --channels 500 --rounds 3

Every process started here is stopped by its PID, even after an error; every wait is bounded.
Client, servers and Redis share the machine: the figures compare the modes, not machines.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import redis

from deploy.redis_ha import RedisClusterSet
from deploy.stack import RedisServer, Stack, free_port, private_dir
from workers.wsload import open_client, parse_ws_url, source_addresses

RESULTS = Path(__file__).resolve().parent / "results"
ROUND_TIMEOUT = 60.0


def _subscribers(ports: list[int]) -> dict[int, int]:
    """Connections with a pub/sub or sharded pub/sub subscription, per node port."""
    counts = {}
    for port in ports:
        clients = redis.Redis(port=port, socket_timeout=5).client_list()
        counts[port] = sum(1 for c in clients if int(c.get("sub", 0)) > 0 or int(c.get("ssub", 0)) > 0)
    return counts


async def _measure(stack: Stack, sockets: int, channels: int, rounds: int, ports: list[int]) -> dict[str, object]:
    from ws4redis_server import RedisPublisher

    facilities = [f"clusterbench-{i}" for i in range(channels)]
    sources = source_addresses(parse_ws_url(f"{stack.ws_url}/ws/x"), sockets)
    arrivals: list[float] = [0.0] * sockets
    seen = [0] * sockets
    done = asyncio.Event()
    state = {"round": -1, "left": sockets}
    loop = asyncio.get_running_loop()

    def on_message(i: int, text: str, arrival: float) -> None:
        if text.endswith(f" {state['round']}") and seen[i] != state["round"]:
            seen[i] = state["round"]
            arrivals[i] = arrival
            state["left"] -= 1
            if not state["left"]:
                done.set()

    limit = asyncio.Semaphore(100)

    async def one(i: int) -> object:
        url = parse_ws_url(f"{stack.ws_url}/ws/{facilities[i % channels]}?subscribe-broadcast")
        async with limit:
            return await open_client(url, sources[i % len(sources)], timeout=60,
                                     on_message=lambda text, arrival, i=i: on_message(i, text, arrival))

    clients = await asyncio.gather(*(one(i) for i in range(sockets)))
    times, publish_times = [], []
    try:
        await asyncio.sleep(1)
        for round_ in range(1, rounds + 1):
            state["round"], state["left"] = round_, sockets
            done.clear()

            def publish_all(round_: int = round_) -> float:
                begun = time.monotonic()
                for facility in facilities:
                    RedisPublisher(facility=facility, broadcast=True).publish_message(f"{facility} {round_}",
                                                                                      expire=0)
                return time.monotonic() - begun

            started = time.monotonic()
            publish_times.append(await loop.run_in_executor(None, publish_all))
            try:
                await asyncio.wait_for(done.wait(), ROUND_TIMEOUT)
            except TimeoutError:
                print(f"  round {round_}: {state['left']} sockets missing after {ROUND_TIMEOUT:.0f}s", file=sys.stderr)
            times.append(max(arrivals) - started)
        subscribers = await loop.run_in_executor(None, _subscribers, ports)  # while the sockets are open
    finally:
        await asyncio.gather(*(client.close(timeout=5) for client in clients), return_exceptions=True)  # type: ignore[attr-defined]
    broadcast = statistics.median(times)
    return {"broadcast_ms": broadcast * 1000, "deliveries_per_s": sockets / broadcast,
            "publishes_per_s": channels / statistics.median(publish_times), "subscribers": subscribers}


def run_mode(mode: str, sockets: int, channels: int, rounds: int, workers: int) -> dict[str, object]:
    from django.test import override_settings

    servers: RedisClusterSet | RedisServer = RedisClusterSet() if mode == "cluster" else RedisServer()
    stack = None
    try:
        servers.start()
        url = servers.url
        ports = servers.primaries() if isinstance(servers, RedisClusterSet) else [servers.port]
        stack = Stack(free_port(), url, run_dir=private_dir("ws4r-clusterbench-"),
                      env={"WS_WORKERS": str(workers), "WS_GEVENT": str(sockets // workers + 500)}, nginx_workers=2)
        stack.start()
        with override_settings(WS4REDIS_CONNECTION={"url": url}):
            figures = asyncio.run(_measure(stack, sockets, channels, rounds, ports))
        figures["pubsub_connections_per_worker"] = {port: count / workers
                                                    for port, count in figures.pop("subscribers").items()}  # type: ignore[attr-defined]
        return figures
    finally:
        if stack is not None:
            stack.stop()
        servers.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="WebSocket workers")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    import django

    django.setup()
    results = {}
    for mode in ("single", "cluster"):
        print(f"{mode}: {args.sockets} sockets over {args.channels} channels, {args.rounds} rounds ...", flush=True)
        results[mode] = run_mode(mode, args.sockets, args.channels, args.rounds, args.workers)
    lines = [f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {args.sockets} sockets over "
             f"{args.channels} channels, {args.workers} WebSocket workers, {args.rounds} rounds (medians); "
             f"load average {os.getloadavg()[0]:.1f} at the end.", "",
             "| Redis | broadcast to all, last delivery ms | deliveries/s | publishes/s "
             "| pub/sub connections per worker, per node |",
             "|---|---:|---:|---:|---|"]
    for mode, figures in results.items():
        connections = ", ".join(f"{count:g}" for count in figures["pubsub_connections_per_worker"].values())  # type: ignore[attr-defined]
        name = "1 server" if mode == "single" else "Cluster, 3 primaries + 3 replicas"
        lines.append(f"| {name} | {figures['broadcast_ms']:.0f} | {figures['deliveries_per_s']:,.0f} | "
                     f"{figures['publishes_per_s']:,.0f} | {connections} |")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"cluster-{datetime.now(UTC):%Y%m%d-%H%M%S}.md"
    path.write_text(text)
    (RESULTS / "cluster-latest.md").write_text(text)
    print(f"written to {path} and cluster-latest.md")


if __name__ == "__main__":
    main()
