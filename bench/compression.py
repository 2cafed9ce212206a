"""``python -m bench.compression``: what permessage-deflate (WS4REDIS_COMPRESSION) costs the server.

For each setting (off, on), a ``manage.py runserver`` of its own (one process: its memory is the
sockets') and N clients of websockets' asyncio implementation, which offers permessage-deflate
with its defaults (``client_max_window_bits``, context takeover both ways), subscribed to one
broadcast channel:

- memory per idle socket: the server's RSS after the N handshakes, minus before, over N;
- memory per socket once it has sent a message: after one broadcast of a chat-sized JSON message
  (the server answers server_no_context_takeover: no compressor is kept per socket);
- memory per further message: after --messages more broadcasts, over N and messages;
- bytes on the wire per message (the frame's payload) and the server's CPU per delivery;
- memory once every socket has also received a compressed message (its inflater is made then,
  and kept while the client uses context takeover).

    python -m bench.compression                 # N = 1,000 sockets, 20 messages
    python -m bench.compression --sockets 200 --messages 5

Figures, not assertions; every wait is bounded.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from deploy.stack import ROOT, RedisServer, can_connect, free_port, private_dir, stop_pid, wait_for

FACILITY = "compressionbench"
MESSAGE = json.dumps({"room": "lobby", "user": "alice", "text": "Hello everyone, how is the bench going? " * 4,
                      "sent": "2026-11-27T15:00:00Z", "id": 123456})


def rss(pid: int) -> int:
    """Resident memory of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, seconds: float = 1.0) -> int:
    """RSS once the process has been idle for a moment (after the last deliveries)."""
    time.sleep(seconds)
    return rss(pid)


async def measure(port: int, pid: int, redis_url: str, sockets: int, messages: int, compression: bool) -> dict:
    import redis
    from websockets.asyncio.client import connect

    channel = f"broadcast:{FACILITY}"
    uri = f"ws://127.0.0.1:{port}/ws/{FACILITY}?subscribe-broadcast"
    publisher = redis.Redis.from_url(redis_url)
    before = settle(pid)
    clients = []
    for _ in range(sockets):
        clients.append(await connect(uri, compression="deflate" if compression else None, max_queue=None,
                                     open_timeout=30, ping_interval=None))
    negotiated = clients[0].response.headers.get("Sec-WebSocket-Extensions")
    wait_for(lambda: publisher.pubsub_numsub(channel)[0][1] >= 1, 30, "the subscriptions")
    idle = settle(pid)

    async def everyone_gets(message: str) -> None:
        await asyncio.wait_for(asyncio.gather(*(client.recv() for client in clients)), 60)

    received = asyncio.ensure_future(everyone_gets(MESSAGE))
    publisher.publish(channel, MESSAGE)
    await received
    first = settle(pid)
    started = cpu(pid)
    for _ in range(messages):
        received = asyncio.ensure_future(everyone_gets(MESSAGE))
        publisher.publish(channel, MESSAGE)
        await received
    spent = cpu(pid) - started
    more = settle(pid)
    for client in clients:  # the server inflates one message per socket
        await client.send("ping from the client " * 8)
    inbound = settle(pid)
    wire = _wire_size(compression)
    await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
    return {
        "compression": compression, "negotiated": negotiated, "sockets": sockets,
        "idle_socket_kib": (idle - before) / sockets / 1024,
        "first_message_kib_per_socket": (first - idle) / sockets / 1024,
        "further_messages_kib_per_socket_message": (more - first) / sockets / max(messages, 1) / 1024,
        "after_receiving_kib_per_socket": (inbound - more) / sockets / 1024,
        "payload_bytes": wire, "message_bytes": len(MESSAGE),
        "server_cpu_us_per_delivery": spent / (sockets * max(messages, 1)) * 1e6,
    }


def _wire_size(compression: bool) -> int:
    """The payload's size on the wire, compressed as the server does (each message alone)."""
    if not compression:
        return len(MESSAGE)
    from ws4redis_server.compression import compress

    return len(compress(MESSAGE.encode(), 15))


def run_one(redis: RedisServer, sockets: int, messages: int, compression: bool) -> dict[str, Any]:
    port = free_port()
    work = private_dir("ws4r-bench-compression-")
    env = {**os.environ, "REDIS_URL": redis.url, "DATABASE_URL": f"sqlite:///{work}/db.sqlite3",
           "DJANGO_SETTINGS_MODULE": "webapp.settings", "WS4REDIS_COMPRESSION": "1" if compression else "0",
           "LOG_LEVEL": "WARNING", "STATIC_ROOT": str(work / "static")}
    log = work / "runserver.log"
    with open(log, "ab") as out:
        server = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{port}",
                                   "--noreload"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: server.poll() is None and can_connect(("127.0.0.1", port)), 60, "runserver", log)
        return asyncio.run(measure(port, server.pid, redis.url, sockets, messages, compression))
    finally:
        stop_pid(server, signal.SIGINT, 10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compression", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=20)
    args = parser.parse_args(argv)
    redis = RedisServer().start()
    try:
        for compression in (False, True):
            print(json.dumps(run_one(redis, args.sockets, args.messages, compression)), flush=True)
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
