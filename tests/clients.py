"""Many real WebSocket clients in one process (the lean asyncio client of workers/wsload.py), for
tests and benchmarks that hold hundreds or thousands of sockets through nginx, and a publisher
that goes through Django's own view."""
from __future__ import annotations

import asyncio
import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter

from deploy.stack import Stack, wait_for
from workers.wsload import OnMessage, WebSocketClient, open_client, parse_ws_url, source_addresses

CONNECTING = 100  # handshakes in flight at once


async def open_clients(urls: list[str], timeout: float = 60,
                       on_message: list[OnMessage] | None = None) -> list[WebSocketClient]:
    """Opens one client per URL (at most CONNECTING handshakes at once); raises if any fails.
    Messages queue for ``recv``, or go to ``on_message[i](text, arrival)`` for the i-th client."""
    limit = asyncio.Semaphore(CONNECTING)

    async def one(url: str, index: int) -> WebSocketClient:
        target = parse_ws_url(url)
        sources = source_addresses(target, len(urls))
        callback = on_message[index] if on_message is not None else None
        async with limit:
            return await open_client(target, sources[index % len(sources)], timeout=timeout, on_message=callback)

    results = await asyncio.gather(*(one(url, i) for i, url in enumerate(urls)), return_exceptions=True)
    clients = [result for result in results if isinstance(result, WebSocketClient)]
    failures = [result for result in results if not isinstance(result, WebSocketClient)]
    if failures:
        await close_clients(clients)
        raise AssertionError(f"{len(failures)} of {len(urls)} sockets did not open: {failures[0]!r}")
    return clients


async def close_clients(clients: list[WebSocketClient]) -> None:
    await asyncio.gather(*(client.close(timeout=5) for client in clients), return_exceptions=True)


async def next_messages(clients: list[WebSocketClient], timeout: float) -> list[str | None]:
    """Returns the next message of each client (None for one that got none within ``timeout``
    seconds or was closed)."""

    async def one(client: WebSocketClient) -> str | None:
        try:
            return await client.recv(timeout)
        except (TimeoutError, ConnectionError):
            return None

    return list(await asyncio.gather(*(one(client) for client in clients)))


def close_codes(clients: list[WebSocketClient]) -> Counter:
    """Counts the clients by (close code, reason) of the server's close frame; (None, None) for
    a client that is still open or got no close frame."""
    codes: Counter = Counter()
    for client in clients:
        received = client.protocol.close_rcvd
        codes[(int(received.code), received.reason) if received is not None else (None, None)] += 1
    return codes


def all_workers(stack: Stack, instance: str) -> set[int]:
    """Returns the worker PIDs of ``instance`` once all of them are up (a fresh stack answers on
    its sockets before its workers are spawned)."""
    name, default = {"websocket": ("WS_WORKERS", 4), "django": ("DJANGO_WORKERS", 3)}[instance]
    count = int(stack.extra_env.get(name, default))
    wait_for(lambda: len(workers_or_none(stack, instance) or ()) == count, 60, f"{count} {instance} workers")
    return set(stack.worker_pids(instance))


def workers_or_none(stack: Stack, instance: str) -> list[int] | None:
    """The worker PIDs of ``instance``, or None while its master is being replaced."""
    try:
        return stack.worker_pids(instance)
    except (OSError, ValueError):
        return None


class DjangoPublisher:
    """Publishes on facility ``demo`` through the site's own view (``/pubsub/publish/``), via nginx
    and the Django instance, as the demo page does."""

    def __init__(self, http_url: str) -> None:
        self.url = http_url
        cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
        self.opener.open(f"{http_url}/pubsub/", timeout=30).read()  # sets the CSRF cookie
        self.token = next(cookie.value for cookie in cookies if cookie.name == "csrftoken")

    def publish(self, message: str) -> int:
        """Returns the HTTP status (0 if no answer came)."""
        data = urllib.parse.urlencode({"message": message, "csrfmiddlewaretoken": self.token}).encode()
        try:
            with self.opener.open(f"{self.url}/pubsub/publish/", data=data, timeout=60) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0
