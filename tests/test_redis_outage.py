"""Redis outages: unreachable when the WebSocket loop starts (it logs clearly, keeps retrying, and
serves sockets once Redis is back, no crash loop), and restarted under 1,000 open sockets (none
is closed; every hub reconnects, resubscribes its channels and delivers again; logged once per
worker process)."""
import asyncio
import os
import re
import uuid

import pytest

from deploy.stack import RedisServer, Stack, free_port, private_dir, wait_for
from tests.clients import all_workers, close_clients, next_messages, open_clients
from ws4redis_server.testing import connect


def test_loop_starts_without_redis_and_serves_once_it_is_back() -> None:
    port = free_port()
    run_dir = private_dir("ws4r-outage-")
    stack = Stack(free_port(), f"redis://127.0.0.1:{port}/0", run_dir=run_dir,
                  static_root=os.environ["STATIC_ROOT"], env={"WS_WORKERS": "2", "WS_GEVENT": "100"},
                  nginx_workers=1)
    redis = RedisServer(port, private_dir("ws4r-outage-redis-"))
    log = run_dir / "uwsgi.log"
    try:
        stack.start()
        wait_for(lambda: log.read_text().count("is unreachable") >= 2, 60, "both workers' outage log line", log)
        masters = stack.pid_of("websocket"), stack.pid_of("django")
        # A socket is served (the echo handler needs no Redis) while Redis is down.
        with connect(f"{stack.ws_url}/ws/echo/") as ws:
            assert ws.recv(timeout=10) == "Hello!"
        redis.start()
        wait_for(lambda: log.read_text().count("is back after") >= 2, 60, "both workers reconnecting", log)
        with connect(f"{stack.ws_url}/ws/outage?subscribe-broadcast") as ws:
            redis.client().publish("broadcast:outage", "after the outage")
            assert ws.recv(timeout=10) == "after the outage"
        text = log.read_text()
        # Logged once per worker and outage, not once per retry; the workers never restarted.
        assert text.count("is unreachable") == 2, text[-2000:]
        assert "Traceback" not in text
        assert (stack.pid_of("websocket"), stack.pid_of("django")) == masters
    finally:
        stack.stop()
        redis.stop()


SOCKETS = 1000
FACILITIES = 20


@pytest.mark.slow
def test_a_redis_restart_closes_no_socket_and_every_hub_resubscribes(stack: Stack, redis_server: RedisServer) -> None:
    """1,000 sockets through nginx; redis-server is killed and started again on its port."""
    workers = all_workers(stack, "websocket")
    log = stack.run_dir / "uwsgi.log"
    prefix = "restart" + uuid.uuid4().hex[:8]
    facilities = [f"{prefix}-{i}" for i in range(FACILITIES)]
    urls = [f"{stack.ws_url}/ws/{facilities[i % FACILITIES]}?subscribe-broadcast" for i in range(SOCKETS)]

    channels = [f"broadcast:{facility}" for facility in facilities] + ["ws4redis:hub"]

    def subscriptions() -> dict[bytes, int]:
        """How many connections (one per hub) are subscribed to each of the test's channels and
        to the hubs' control channel."""
        return dict(redis_server.client().pubsub_numsub(*channels))

    async def everyone_gets(clients: list, text: str) -> None:
        """Publishes ``text`` on every facility; each socket must get its facility's copy."""
        client = redis_server.client()
        for facility in facilities:
            client.publish(f"broadcast:{facility}", f"{text} {facility}")
        got = await next_messages(clients, 30)
        missing = [i for i, message in enumerate(got) if message != f"{text} {facilities[i % FACILITIES]}"]
        assert not missing, f"{len(missing)} sockets missed {text!r}, e.g. socket {missing[0]}: {got[missing[0]]!r}"

    async def scenario() -> str:
        clients = await open_clients(urls)
        try:
            before = subscriptions()
            assert before[b"ws4redis:hub"] >= len(workers) and min(before.values()) >= 1, before
            await everyone_gets(clients, "before")
            offset = log.stat().st_size
            since = lambda: log.read_bytes()[offset:].decode(errors="replace")  # noqa: E731

            await asyncio.to_thread(redis_server.kill)
            await asyncio.to_thread(wait_for, lambda: since().count("Lost Redis") >= len(workers), 60,
                                    "every hub noticing the outage", log)
            await asyncio.sleep(3)  # reconnection attempts fail meanwhile
            assert not [client for client in clients if client.closed.done()]

            await asyncio.to_thread(redis_server.start)  # the same port, empty
            await asyncio.to_thread(wait_for, lambda: since().count("is back after") >= len(workers), 60,
                                    "every hub reconnecting", log)
            # Every hub has subscribed again to every channel it had: the same channels, each on
            # as many connections as before.
            try:
                await asyncio.to_thread(wait_for, lambda: subscriptions() == before, 30, "the subscriptions")
            except RuntimeError:
                raise AssertionError(f"subscriptions {before} before, {subscriptions()} after") from None
            await everyone_gets(clients, "after the restart")
            assert not [client for client in clients if client.closed.done()]
            return since()
        finally:
            await close_clients(clients)

    text = asyncio.run(scenario())
    # Logged once per worker process and outage, not per socket nor per retry.
    assert text.count("Lost Redis") == len(workers), text[-3000:]
    resubscribed = [int(n) for n in re.findall(r"is back after [0-9.]+s; resubscribing (\d+) channels", text)]
    assert len(resubscribed) == len(workers) and sum(resubscribed) >= FACILITIES, text[-3000:]
    assert "is unreachable" not in text and "Traceback" not in text
    assert len([line for line in text.splitlines() if "ws4redis_server" in line]) <= 3 * len(workers), text[-3000:]
    assert all_workers(stack, "websocket") == workers  # no worker restarted
