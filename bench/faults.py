"""``python -m bench.faults`` (also ``python -m bench faults``): the stack under faults, on a stack of
its own (deploy.stack: a redis-server, uWSGI from deploy/uwsgi.ini, nginx), through nginx.

1. **Redis restart.** N sockets (default 1,000) on one facility; redis-server is killed, left down
   for each of --outages seconds, and started again on its port. From then on a numbered message
   is published every 10 ms: the figures are the time from Redis answering again (its first
   accepted PUBLISH) to the first socket and to the last socket receiving one.
2. **Django reload.** N sockets on facility ``demo``; messages are posted one after the other to
   Django's own view (``/pubsub/publish/``) while Django's instance is reloaded: HTTP failures,
   and messages that some socket never received (lost), should both be 0.
3. **Stalled reader.** One client that never reads (4 KiB receive buffer) and --readers clients
   that read a stream of --stream messages of 16 KiB on the same facility: the WebSocket
   workers' RSS and PSS, sampled every 20 ms, before, at their peak and after, against the
   outbox bounds (WS4REDIS_OUTBOX_*).

    python -m bench.faults                         # all three, N = 1,000
    python -m bench.faults --parts restart --outages 1,5 --sockets 500

Writes bench/results/faults-<time>.md and .json. Figures, not assertions. Every step is bounded
in count and time.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PARTS = ("restart", "reload", "stall")
HISTORY_LENGTH, HISTORY_SECONDS = 1000, 600  # the settings' defaults
PUBLISH_EVERY = 0.01  # seconds between numbered messages after a restart
RESUME_TIMEOUT = 40.0  # seconds after Redis answers for every socket to get a message
RELOAD_MESSAGES = 200  # messages posted through Django at the least, the reload among them
RELOAD_AFTER = 40
MESSAGE_SIZE = 16 * 1024
AHEAD = 64  # messages the stream may be ahead of the slowest reading socket
SAMPLE_EVERY = 0.02  # seconds between memory samples during the stream


def _positive_list(text: str) -> list[float]:
    try:
        values = [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds like 1,5,15 (got {text!r})") from None
    if not values or min(values) < 0 or max(values) > 120 or len(values) > 6:
        raise argparse.ArgumentTypeError("1 to 6 outages of 0 to 120 seconds")
    return values


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated among {', '.join(PARTS)}")
    parser.add_argument("--sockets", type=int, default=1000, help="sockets held (default 1000, at most 10000)")
    parser.add_argument("--outages", type=_positive_list, default=[1.0, 5.0, 15.0],
                        help="seconds Redis stays down, one restart each (default 1,5,15)")
    parser.add_argument("--readers", type=int, default=10, help="reading sockets beside the stalled one (default 10)")
    parser.add_argument("--stream", type=int, default=2000, help="16 KiB messages in the stream (default 2000)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    if not args.parts or set(args.parts) - set(PARTS):
        parser.error(f"--parts: choose among {', '.join(PARTS)}")
    if not 1 <= args.sockets <= 10_000 or not 1 <= args.readers <= 200 or not 1 <= args.stream <= 20_000:
        parser.error("--sockets 1..10000, --readers 1..200, --stream 1..20000")
    return args


async def until_everyone_has(publish: Any, has: Any, sockets: int, what: str, timeout: float = 60) -> None:
    """Calls ``publish()`` every 0.5 s until ``has()`` counts all ``sockets``: every socket is
    subscribed and served (its worker may still have been starting)."""
    deadline = time.monotonic() + timeout
    while has() < sockets:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {has()} of {sockets} sockets got {what} within {timeout:.0f}s")
        await asyncio.to_thread(publish)
        await asyncio.sleep(0.5)


# -- 1. Redis restart ---------------------------------------------------------------------------

async def redis_restart(target: Any, sockets: int, outage: float) -> dict[str, Any]:
    """Kills Redis under ``sockets`` sockets, restarts it after ``outage`` s; returns the times."""
    import redis

    from tests.clients import close_clients, open_clients

    facility = "faults" + uuid.uuid4().hex[:8]
    channel = f"broadcast:{facility}"
    from ws4redis_server import history

    first_after: dict[int, float] = {}  # socket -> arrival of its first message sent after the restart
    got: list[set[int]] = [set() for _ in range(sockets)]  # socket -> numbers of the messages it got
    warm: set[int] = set()
    answered: list[float] = []

    def on_message_of(index: int) -> Any:
        def on_message(text: str, arrival: float) -> None:
            if text.startswith("after "):
                got[index].add(int(text[6:]))
                first_after.setdefault(index, arrival)
            elif text == "warm":
                warm.add(index)
        return on_message

    url = f"{target.stack.ws_url}/ws/{facility}?subscribe-broadcast"
    clients = await open_clients([url] * sockets, on_message=[on_message_of(i) for i in range(sockets)])
    try:
        server = target.redis_server
        await until_everyone_has(
            lambda: history.publish(server.client(), "", [channel], b"warm", length=HISTORY_LENGTH,
                                    seconds=HISTORY_SECONDS),
            lambda: len(warm), sockets, "a message before the restart")
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(outage)
        stop = threading.Event()

        def publish_until_everyone_has_one() -> int:
            """Publishes a numbered message every PUBLISH_EVERY s from the moment Redis answers, as
            RedisPublisher does (with an id, kept in the channel's history)."""
            client = redis.Redis(host="127.0.0.1", port=server.port, socket_connect_timeout=0.2, socket_timeout=1)
            number = 0
            deadline = time.monotonic() + RESUME_TIMEOUT + 20
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    history.publish(client, "", [channel], f"after {number}".encode(), length=HISTORY_LENGTH,
                                    seconds=HISTORY_SECONDS)
                except redis.RedisError:
                    time.sleep(0.002)
                    continue
                if not answered:
                    answered.append(time.monotonic())
                number += 1
                time.sleep(PUBLISH_EVERY)
            return number

        publisher = asyncio.create_task(asyncio.to_thread(publish_until_everyone_has_one))
        await asyncio.to_thread(server.start)
        deadline = time.monotonic() + RESUME_TIMEOUT
        while len(first_after) < sockets and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        published = await publisher
        # Messages published before a hub had resubscribed come from the history: wait for them.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(len(numbers) < published for numbers in got):
            await asyncio.sleep(0.05)
        still_open = sum(1 for client in clients if not client.closed.done())
    finally:
        await close_clients(clients)
    arrivals = sorted(first_after.values())
    start = answered[0] if answered else None
    return {
        "outage_s": outage,
        "sockets": sockets,
        "still_open": still_open,
        "reached": len(arrivals),
        "first_ms": round(1000 * (arrivals[0] - start)) if arrivals and start else None,
        "last_ms": round(1000 * (arrivals[-1] - start)) if len(arrivals) == sockets and start else None,
        "median_ms": round(1000 * (arrivals[len(arrivals) // 2] - start)) if arrivals and start else None,
        "published": published,
        "lost_deliveries": sum(published - len(numbers & set(range(published))) for numbers in got),
    }


# -- 2. Django reload ---------------------------------------------------------------------------

async def django_reload(target: Any, sockets: int) -> dict[str, Any]:
    """Posts messages through Django while its instance reloads; returns failures and losses."""
    from tests.clients import DjangoPublisher, all_workers, close_clients, open_clients, workers_or_none

    stack = target.stack
    token = uuid.uuid4().hex[:10]
    received: list[set[int]] = [set() for _ in range(sockets)]
    warm: set[int] = set()

    def on_message_of(index: int) -> Any:
        def on_message(text: str, arrival: float) -> None:
            if text.startswith(f"[django] {token} "):
                received[index].add(int(text.rsplit(" ", 1)[1]))
            elif text == f"[django] warm {token}":
                warm.add(index)
        return on_message

    url = f"{stack.ws_url}/ws/demo?subscribe-broadcast"
    clients = await open_clients([url] * sockets, on_message=[on_message_of(i) for i in range(sockets)])
    try:
        client = target.redis_server.client()
        await until_everyone_has(lambda: client.publish("broadcast:demo", f"[django] warm {token}"),
                                 lambda: len(warm), sockets, "a message before the reload")
        old = await asyncio.to_thread(all_workers, stack, "django")
        publisher = await asyncio.to_thread(DjangoPublisher, stack.http_url)

        def post_across_the_reload() -> tuple[list[int], list[float]]:
            statuses: list[int] = []
            seconds: list[float] = []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                workers = set(workers_or_none(stack, "django") or ())
                if len(statuses) >= RELOAD_MESSAGES and len(workers) == len(old) and not workers & old:
                    break
                if len(statuses) == RELOAD_AFTER:
                    stack.reload("django")
                began = time.monotonic()
                statuses.append(publisher.publish(f"{token} {len(statuses)}"))
                seconds.append(time.monotonic() - began)
            return statuses, seconds

        statuses, seconds = await asyncio.to_thread(post_across_the_reload)
        sent = {number for number, status in enumerate(statuses) if status == 200}
        deadline = time.monotonic() + 30
        while any(sent - got for got in received) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        still_open = sum(1 for client in clients if not client.closed.done())
    finally:
        await close_clients(clients)
    return {
        "sockets": sockets,
        "still_open": still_open,
        "posted": len(statuses),
        "http_failures": len(statuses) - len(sent),
        "lost_deliveries": sum(len(sent - got) for got in received),
        "messages_lost": len({number for got in received for number in sent - got}),
        "slowest_post_ms": round(1000 * max(seconds)) if seconds else None,
    }


# -- 3. Stalled reader --------------------------------------------------------------------------

async def stalled_reader(target: Any, readers: int, stream: int) -> dict[str, Any]:
    """Streams ``stream`` 16 KiB messages to ``readers`` sockets beside one that never reads;
    returns the WebSocket workers' memory before, at the peak and after."""
    import redis

    from tests.clients import close_clients, open_clients
    from ws4redis_server.testing import raw_socket

    from .memory import memory_of, with_children

    stack = target.stack
    facility = "stall" + uuid.uuid4().hex[:8]
    channel = f"broadcast:{facility}"
    counts = [0] * readers

    def on_message_of(index: int) -> Any:
        def on_message(text: str, arrival: float) -> None:
            counts[index] += 1
        return on_message

    url = f"{stack.ws_url}/ws/{facility}?subscribe-broadcast"

    def workers_memory() -> Any:
        return memory_of(with_children(stack.pid_of("websocket"))[1:])

    stalled = await asyncio.to_thread(raw_socket, url, 4096)  # never read until the end
    clients = await open_clients([url] * readers, on_message=[on_message_of(i) for i in range(readers)])
    samples: list[Any] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(workers_memory())
            time.sleep(SAMPLE_EVERY)

    try:
        await asyncio.sleep(1)
        before = workers_memory()
        sampler = threading.Thread(target=sample)
        sampler.start()
        client = redis.Redis.from_url(target.redis_server.url)
        padding = "x" * (MESSAGE_SIZE - 8)

        def publish() -> float:
            began = time.monotonic()
            deadline = began + 180
            for number in range(stream):
                while number - min(counts) > AHEAD and time.monotonic() < deadline:
                    time.sleep(0.001)
                client.publish(channel, f"{number:08d}{padding}")
            return time.monotonic() - began

        seconds = await asyncio.to_thread(publish)
        deadline = time.monotonic() + 30
        while min(counts) < stream and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        done.set()
        sampler.join()
        after = workers_memory()
        close_code = await asyncio.to_thread(_close_code_of, stalled)
    finally:
        done.set()
        stalled.close()
        await close_clients(clients)
    peak_rss = max(samples, key=lambda memory: memory.rss_kib) if samples else before
    peak_pss = max(samples, key=lambda memory: memory.pss_kib) if samples else before
    return {
        "readers": readers,
        "stream_mib": round(stream * MESSAGE_SIZE / 2 ** 20, 1),
        "stream_s": round(seconds, 1),
        "readers_complete": sum(1 for count in counts if count >= stream),
        "stalled_close_code": close_code,
        "rss_before_mib": round(before.rss_kib / 1024, 1),
        "rss_peak_mib": round(peak_rss.rss_kib / 1024, 1),
        "rss_after_mib": round(after.rss_kib / 1024, 1),
        "pss_before_mib": round(before.pss_kib / 1024, 1),
        "pss_peak_mib": round(peak_pss.pss_kib / 1024, 1),
        "pss_after_mib": round(after.pss_kib / 1024, 1),
        "samples": len(samples),
    }


def _close_code_of(sock: socket.socket) -> int | None:
    """Reads what the stalled client was sent, to its end; returns the server's close code."""
    from wsproto.connection import Connection, ConnectionType
    from wsproto.events import CloseConnection

    protocol = Connection(ConnectionType.CLIENT)
    sock.settimeout(20)
    code = None
    try:
        while True:
            data = sock.recv(1 << 20)
            protocol.receive_data(data or None)
            for event in protocol.events():
                if isinstance(event, CloseConnection) and code is None:
                    code = event.code
            if not data:
                return code
    except OSError:
        return code


# -- running ------------------------------------------------------------------------------------

def _settings() -> dict[str, Any]:
    import django

    django.setup()
    from ws4redis_server.conf import get_settings

    settings = get_settings()
    return {"outbox_messages": settings.outbox_messages, "outbox_bytes": settings.outbox_bytes}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from deploy.stack import manage

    from . import machine
    from .targets import Ws4RedisStack

    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='ws4r-faults-')}/db.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    manage("migrate", "--noinput", "-v", "0")
    run_data: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine.describe(),
        "background_busy_pct": machine.busy_percent(3),
        "settings": _settings(),
        "args": {"sockets": args.sockets, "outages": args.outages, "readers": args.readers, "stream": args.stream},
        "restart": [], "reload": None, "stall": None,
    }
    print(f"Other work is using {run_data['background_busy_pct']:.0f} % of the CPUs; load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}.", flush=True)
    target = Ws4RedisStack(args.sockets + args.readers + 10)

    def measure(part: str, step: Any) -> dict[str, Any]:
        """Runs one measurement; a failed one is recorded and does not lose the others."""
        try:
            row = asyncio.run(step)
        except Exception as exc:
            row = {"error": f"{type(exc).__name__}: {exc}"}
        row["loadavg"] = os.getloadavg()[0]
        print(f"[{part}] {row}", flush=True)
        return row

    try:
        target.start()
        from tests.clients import all_workers

        all_workers(target.stack, "websocket")
        if "restart" in args.parts:
            for outage in args.outages:
                run_data["restart"].append(measure("restart", redis_restart(target, args.sockets, outage)))
        if "reload" in args.parts:
            run_data["reload"] = measure("reload", django_reload(target, args.sockets))
        if "stall" in args.parts:
            run_data["stall"] = measure("stall", stalled_reader(target, args.readers, args.stream))
    finally:
        target.stop()
    run_data["loadavg_at_end"] = os.getloadavg()
    return run_data


def markdown(run: dict[str, Any]) -> str:
    """The figures as a Markdown section, with the machine and how busy it was."""
    m = run["machine"]
    lines = [
        f"## Faults ({run['started']})",
        "",
        f"{m['cores']} cores of {m['cpu']}, {m['memory_gib']} GiB, Linux {m['kernel']}, Python {m['python']}, "
        f"uWSGI {m['packages']['uWSGI']}, gevent {m['packages']['gevent']}, nginx {m['nginx']}, {m['redis']}; "
        f"shared: load average {m['loadavg_at_start'][0]:.1f} at the start, "
        f"{run['loadavg_at_end'][0]:.1f} at the end, other work using {run['background_busy_pct']:.0f} % of the CPUs.",
        "",
    ]
    if run["restart"]:
        lines += ["Redis killed and restarted on its port under N sockets: time from Redis answering again to "
                  "the first, the median and the last socket receiving a message published after it; a message "
                  "is published every 10 ms from then on (with ids, as RedisPublisher does) until every socket "
                  "has one, and deliveries lost counts those a socket never got.", "",
                  "| Redis down | sockets | still open | reached | first | median | last | published | "
                  "deliveries lost | load |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in run["restart"]:
            if "error" in row:
                lines.append(f"| failed: {row['error']} |||||||||| ")
                continue
            lines.append(f"| {row['outage_s']:g} s | {row['sockets']:,} | {row['still_open']:,} | {row['reached']:,} | "
                         f"{_ms(row['first_ms'])} | {_ms(row['median_ms'])} | {_ms(row['last_ms'])} | "
                         f"{row['published']:,} | {row['lost_deliveries']:,} | {row['loadavg']:.1f} |")
        lines.append("")
    reload, stall = run["reload"], run["stall"]
    for part, row in (("Django reload", reload), ("Stalled reader", stall)):
        if row and "error" in row:
            lines += [f"{part}: failed: {row['error']}", ""]
    if reload and "error" not in reload:
        lines += [f"Django reloaded while {reload['posted']} messages were posted one after the other through "
                  f"`/pubsub/publish/` to {reload['sockets']:,} sockets: {reload['http_failures']} HTTP failures, "
                  f"{reload['messages_lost']} messages lost ({reload['lost_deliveries']} deliveries), "
                  f"{reload['still_open']:,} sockets still open; the slowest post took "
                  f"{_ms(reload['slowest_post_ms'])} (load {reload['loadavg']:.1f}).", ""]
    if stall and "error" not in stall:
        settings = run["settings"]
        lines += [f"One client never reads while {stall['readers']} read a {stall['stream_mib']} MiB stream "
                  f"(16 KiB messages, {stall['stream_s']} s); outbox bound {settings['outbox_messages']:,} messages "
                  f"or {settings['outbox_bytes'] / 2 ** 20:g} MiB per socket. The stalled client was closed with "
                  f"{stall['stalled_close_code']}; {stall['readers_complete']} of {stall['readers']} readers got "
                  f"the whole stream (load {stall['loadavg']:.1f}).", "",
                  "| WebSocket workers | before | peak | after |", "|---|---:|---:|---:|"]
        for kind in ("rss", "pss"):
            lines.append(f"| {kind.upper()} | " + " | ".join(f"{stall[f'{kind}_{when}_mib']} MiB"
                                                           for when in ("before", "peak", "after")) + " |")
        growth = max(stall["rss_peak_mib"] - stall["rss_before_mib"], stall["pss_peak_mib"] - stall["pss_before_mib"])
        lines += ["", f"At most {growth:.1f} MiB more at the peak ({stall['samples']} samples), for a "
                  f"{stall['stream_mib']} MiB stream and a {settings['outbox_bytes'] / 2 ** 20:g} MiB outbox."]
        lines.append("")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def main(argv: list[str] | None = None) -> None:
    import sys

    args = parse_args(sys.argv[1:] if argv is None else argv)
    run_data = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / f"faults-{time.strftime('%Y%m%d-%H%M%S')}"
    base.with_suffix(".json").write_text(json.dumps(run_data, indent=2) + "\n")
    text = markdown(run_data)
    base.with_suffix(".md").write_text(text + "\n")
    print("\n" + text)
    print(f"\nWritten: {base}.md, .json")


if __name__ == "__main__":
    main()
