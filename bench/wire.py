"""``python -m bench.wire`` (also ``python -m bench wire``): what a message's id costs on its way
through Redis to a hub, per message, on loopback.

For each way of publishing (a raw PUBLISH, ``RedisPublisher.publish_message`` with ids, and with
``count_deliveries``), N messages of --size bytes go to one broadcast channel that one hub (in a
child process, as in a WebSocket worker, with one listener) and one raw subscriber (a plain TCP
socket subscribed to whatever the hub subscribed to, counting the bytes Redis sends) listen to.
Figures per message:

- Redis CPU: redis-server's ``used_cpu_user + used_cpu_sys`` over the publishing (parsing the
  publisher's command, the script, writing to both subscribers), and the publishing command's
  own time from ``INFO commandstats``;
- bytes on the hub's connection (what the raw subscriber read, the same as the hub);
- hub CPU: the hub process's CPU time from its first to its last delivery (redis-py's parsing,
  the hub's fan-out, gevent), over N: once as the messages are published one by one (the hub
  wakes up for nearly every message), once as a burst (the hub is stopped with SIGSTOP while
  they are published and continued after: only the reading and fan-out are counted);
- the publisher's round trip.

    python -m bench.wire                    # N = 20,000 messages of 100 bytes
    python -m bench.wire --count 5000 --size 1000

Figures, not assertions; every wait is bounded.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

CHANNEL_FACILITY = "wirebench"
DEADLINE = 120.0  # seconds a variant may take in all
VARIANTS = ("raw PUBLISH", "RedisPublisher (ids)", "RedisPublisher, count_deliveries")


def _setup_django(redis_url: str) -> None:
    os.environ["REDIS_URL"] = redis_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    import django

    django.setup()


# -- the hub, in a child process -------------------------------------------------------------------

def run_hub(channel: str, count: int) -> None:
    """Child process: a hub with one counting listener on ``channel``; prints ``ready``, then
    a JSON line with the CPU seconds spent from the first to the last of ``count`` deliveries."""
    from gevent import monkey

    monkey.patch_all()
    import gevent
    from gevent.event import Event

    _setup_django(os.environ["REDIS_URL"])
    from ws4redis_server.hub import Hub

    done = Event()

    class Listener:
        received = binary = 0
        started = 0.0

        def deliver(self, channel: str, data: bytes, is_text: bool, message_id: str | None = None) -> None:
            if not self.received:
                self.started = time.process_time()
            self.received += 1
            self.binary += not is_text
            if self.received >= count:
                done.set()

    listener = Listener()
    hub = Hub()
    hub.subscribe(channel, listener)
    hub.start()
    if not hub.wait_subscribed([channel], 10):
        print(json.dumps({"error": "not subscribed"}), flush=True)
        return
    print("ready", flush=True)
    done.wait(DEADLINE)
    cpu = time.process_time() - listener.started
    gevent.sleep(0.3)  # the receipts' counter writes its counts
    print(json.dumps({"cpu": cpu, "received": listener.received, "binary": listener.binary}), flush=True)
    hub.stop()


# -- the orchestrator --------------------------------------------------------------------------------

class RawSubscriber:
    """A plain TCP subscriber: counts every byte Redis sends it until stopped."""

    def __init__(self, port: int, channels: list[str]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        command = [b"SUBSCRIBE", *(name.encode() for name in channels)]
        self.sock.sendall(b"*%d\r\n" % len(command) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in command))
        self.sock.settimeout(0.5)
        self.bytes = 0
        self.stopping = False
        self.confirmations = len(channels)
        time.sleep(0.2)
        self._drain()  # the subscription confirmations are not counted
        self.bytes = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            pass

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                if self.stopping:
                    return
                continue
            if not data:
                return
            self.bytes += len(data)

    def stop(self) -> int:
        self.stopping = True
        self.thread.join(5)
        self.sock.close()
        return self.bytes


def _cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def measure(variant: str, redis_server: Any, count: int, size: int, burst: bool) -> dict[str, Any]:
    from ws4redis_server import RedisPublisher
    from ws4redis_server.channels import channel_name, control_channel
    from ws4redis_server.conf import get_settings

    facility = f"{CHANNEL_FACILITY}{uuid.uuid4().hex[:8]}"
    channel = channel_name(get_settings().prefix, "broadcast", facility)
    client = redis_server.client()
    hub = subprocess.Popen([sys.executable, "-m", "bench.wire", "--hub", channel, "--count", str(count)],
                           stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert hub.stdout is not None
        line = hub.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"the hub did not start: {line!r}")
        names = sorted(name.decode() for name in client.pubsub_channels()
                       if name.decode() != control_channel(get_settings().prefix))
        raw = RawSubscriber(redis_server.port, names)
        message = ("x" * size).encode()
        publisher = RedisPublisher(facility=facility, broadcast=True)
        if burst:
            os.kill(hub.pid, signal.SIGSTOP)
        client.config_resetstat()
        cpu_before = _cpu(client)
        started = time.perf_counter()
        for _ in range(count):
            if variant == "raw PUBLISH":
                client.publish(channel, message)
            elif variant == "RedisPublisher (ids)":
                publisher.publish_message(message, expire=0)
            else:
                publisher.publish_message(message, expire=0, count_deliveries=True)
        elapsed = time.perf_counter() - started
        redis_cpu = _cpu(client) - cpu_before
        stats = client.info("commandstats")
        if burst:
            os.kill(hub.pid, signal.SIGCONT)
        out, _ = hub.communicate(timeout=DEADLINE)
        result = json.loads(out.strip().splitlines()[-1])
        raw_bytes = raw.stop()
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.wait(5)
    command = next(name for name in ("cmdstat_evalsha", "cmdstat_exec", "cmdstat_publish") if name in stats)
    return {
        "variant": variant, "count": count, "size": size, "subscribed": names,
        "redis_cpu_us": redis_cpu / count * 1e6,
        "command": command.removeprefix("cmdstat_"), "command_us": stats[command]["usec_per_call"],
        "bytes": raw_bytes / count, "hub_cpu_us": result["cpu"] / max(result["received"], 1) * 1e6,
        "received": result["received"], "binary": result["binary"], "round_trip_us": elapsed / count * 1e6,
    }


def table(rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    lines = ["| publishing | Redis CPU µs/msg | command (µs/call) | bytes/msg on the hub's connection | "
             "hub CPU µs/msg, one by one / burst | publisher round trip µs | received (binary) |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for row, burst in rows:
        lines.append(f"| {row['variant']} | {row['redis_cpu_us']:.1f} | {row['command']} ({row['command_us']:.1f}) | "
                     f"{row['bytes']:.0f} | {row['hub_cpu_us']:.1f} / {burst['hub_cpu_us']:.1f} | "
                     f"{row['round_trip_us']:.0f} | {row['received'] + burst['received']:,}/{2 * row['count']:,} "
                     f"({row['binary'] + burst['binary']}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wire", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000, help="messages per variant (1 to 200,000)")
    parser.add_argument("--size", type=int, default=100, help="bytes per message (0 to 65,536)")
    parser.add_argument("--hub", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.count <= 200_000 or not 0 <= args.size <= 65_536:
        parser.error("--count is 1 to 200,000 and --size 0 to 65,536")
    if args.hub:
        run_hub(args.hub, args.count)
        return 0
    from ws4redis_server.testing import RedisServer

    # No output limit for pub/sub clients: the stopped hub's backlog must not get it disconnected.
    redis_server = RedisServer(args=["--client-output-buffer-limit", "pubsub 0 0 0"]).start()
    try:
        _setup_django(redis_server.url)
        rows = [(measure(variant, redis_server, args.count, args.size, burst=False),
                 measure(variant, redis_server, args.count, args.size, burst=True)) for variant in VARIANTS]
    finally:
        redis_server.stop()
    print(f"{args.count:,} messages of {args.size} bytes per variant, one hub with one listener and one raw "
          f"subscriber; subscribed: {', '.join(rows[1][0]['subscribed'])}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
