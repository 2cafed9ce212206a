"""Restarts of the uWSGI instances with sockets open, through nginx: reloading Django drops no
WebSocket and loses no message published through Django meanwhile; stopping or reloading the
WebSocket instance closes every socket with 1001 (going away) and a reason, so clients
reconnect, instead of cutting TCP."""
from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import Callable

import pytest

from deploy.stack import RedisServer, Stack, free_port, private_dir, wait_for
from tests.clients import (
    DjangoPublisher,
    all_workers,
    close_clients,
    close_codes,
    next_messages,
    open_clients,
    workers_or_none,
)
from tests.fixtures import _warm_up
from workers.wsload import WebSocketClient
from ws4redis_server.server import SHUTDOWN_REASON

GOING_AWAY = (1001, SHUTDOWN_REASON)
SOCKETS = 300  # pub/sub sockets; a tenth as many again on the echo handler
MESSAGES = 40  # messages published through Django at the least, the reload among them
RELOAD_AFTER = 10  # messages published before Django is reloaded
MAX_MESSAGES = 400  # bound: the reload must be over before this many


def publish_across_a_django_reload(stack: Stack, publisher: DjangoPublisher, token: str) -> list[int]:
    """Publishes numbered messages one after the other, reloads Django after RELOAD_AFTER of them
    and goes on until its workers are all new and MESSAGES were sent; returns the statuses."""
    old_workers = all_workers(stack, "django")
    statuses: list[int] = []

    def reloaded() -> bool:
        workers = set(workers_or_none(stack, "django") or ())
        return len(workers) == len(old_workers) and not workers & old_workers

    while len(statuses) < MESSAGES or not reloaded():
        assert len(statuses) < MAX_MESSAGES, "Django's workers were not replaced"
        if len(statuses) == RELOAD_AFTER:
            stack.reload("django")
        statuses.append(publisher.publish(f"{token} {len(statuses)}"))
    return statuses


async def receive_numbered(client: WebSocketClient, token: str, count: int, timeout: float) -> list[int]:
    """Returns the numbers of the messages of ``token`` the client gets, until it has ``count``
    or ``timeout`` seconds pass without one."""
    numbers: list[int] = []
    while len(numbers) < count:
        try:
            message = await client.recv(timeout)
        except (TimeoutError, ConnectionError):
            break
        if message.startswith(f"[django] {token} "):
            numbers.append(int(message.rsplit(" ", 1)[1]))
    return numbers


@pytest.mark.slow
def test_reloading_django_drops_no_socket_and_loses_no_message(stack: Stack) -> None:
    async def scenario() -> None:
        token = uuid.uuid4().hex[:12]
        ws_workers = all_workers(stack, "websocket")
        clients = await open_clients([f"{stack.ws_url}/ws/demo?subscribe-broadcast"] * SOCKETS)
        try:
            publisher = await asyncio.to_thread(DjangoPublisher, stack.http_url)
            statuses = await asyncio.to_thread(publish_across_a_django_reload, stack, publisher, token)
            received = await asyncio.gather(*(receive_numbered(c, token, len(statuses), 30) for c in clients))
            assert Counter(statuses) == {200: len(statuses)}
            # Every socket got every message, in order, and none was closed.
            assert Counter(tuple(numbers) == tuple(range(len(statuses))) for numbers in received) == {True: SOCKETS}
            assert not [client for client in clients if client.closed.done()]
            assert set(stack.worker_pids("websocket")) == ws_workers
        finally:
            await close_clients(clients)

    asyncio.run(scenario())


async def hold_and_restart(stack: Stack, restart: Callable[[], None]) -> Counter:
    """Opens sockets on a pub/sub facility and on the echo handler, calls ``restart`` and returns
    how they were closed; then checks that clients can connect again and receive."""
    facility = "restart" + uuid.uuid4().hex[:8]
    urls = [f"{stack.ws_url}/ws/{facility}?subscribe-broadcast"] * SOCKETS
    urls += [f"{stack.ws_url}/ws/echo/"] * (SOCKETS // 10)
    clients = await open_clients(urls)
    try:
        await asyncio.to_thread(restart)
        await asyncio.wait_for(asyncio.gather(*(client.closed for client in clients)), 60)
        codes = close_codes(clients)
    finally:
        await close_clients(clients)
    # The instance is back: every worker answers, and a new socket gets what is published.
    await asyncio.to_thread(all_workers, stack, "websocket")
    await asyncio.to_thread(_warm_up, stack)
    again = await open_clients([f"{stack.ws_url}/ws/{facility}?subscribe-broadcast"] * 20)
    try:
        from redis import Redis

        Redis.from_url(stack.redis_url).publish(f"broadcast:{facility}", "after the restart")
        assert await next_messages(again, 30) == ["after the restart"] * 20
    finally:
        await close_clients(again)
    return codes


@pytest.mark.slow
def test_stopping_the_websocket_instance_closes_every_socket_with_1001(stack: Stack) -> None:
    master = stack.pid_of("websocket")
    django = stack.pid_of("django")

    def stop() -> None:
        stack.stop_instance("websocket")  # SIGINT to its master; the emperor starts it again
        wait_for(lambda: _pid_or_none(stack, "websocket") not in (None, master), 60, "the WebSocket instance again")

    codes = asyncio.run(hold_and_restart(stack, stop))
    assert codes == {GOING_AWAY: SOCKETS + SOCKETS // 10}
    assert stack.pid_of("django") == django


@pytest.mark.slow
def test_reloading_the_websocket_instance_closes_every_socket_with_1001(stack: Stack) -> None:
    workers = all_workers(stack, "websocket")
    django = all_workers(stack, "django")

    def reload() -> None:
        stack.reload("websocket")  # SIGHUP to its master, as `uwsgi --reload` or touch-reload
        wait_for(lambda: _replaced(stack, workers), 60, "new WebSocket workers")

    codes = asyncio.run(hold_and_restart(stack, reload))
    assert codes == {GOING_AWAY: SOCKETS + SOCKETS // 10}
    assert set(stack.worker_pids("django")) == django


@pytest.mark.slow
def test_stopping_the_whole_stack_closes_every_socket_with_1001() -> None:
    """`make run`'s Ctrl-C: the emperor stops both instances, then nginx stops."""
    redis = RedisServer(workdir=private_dir("ws4r-stop-redis-")).start()
    stack = Stack(free_port(), redis.url, run_dir=private_dir("ws4r-stop-"), static_root=os.environ["STATIC_ROOT"],
                  env={"WS_WORKERS": "2", "WS_GEVENT": "400"}, nginx_workers=1)

    async def scenario() -> Counter:
        clients = await open_clients([f"{stack.ws_url}/ws/stop?subscribe-broadcast"] * 200)
        await asyncio.to_thread(stack.stop)
        await asyncio.wait_for(asyncio.gather(*(client.closed for client in clients)), 10)
        return close_codes(clients)

    try:
        stack.start()
        _warm_up(stack)
        assert asyncio.run(scenario()) == {GOING_AWAY: 200}
    finally:
        stack.stop()
        redis.stop()


def _pid_or_none(stack: Stack, instance: str) -> int | None:
    try:
        return stack.pid_of(instance)
    except (OSError, ValueError):
        return None


def _replaced(stack: Stack, old_workers: set[int]) -> bool:
    workers = set(workers_or_none(stack, "websocket") or ())
    return len(workers) == len(old_workers) and not workers & old_workers
