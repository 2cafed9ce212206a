"""An open socket holds no uWSGI async core: once its handshake is done, its request ends (the
core, its buffers and the WSGI environ are freed) and the socket is served from the gevent loop's
callbacks. A WebSocket worker with 8 cores (``gevent = 8``) therefore holds 400 sockets, every one
of which gets broadcasts, answers pings, echoes through a handler and closes cleanly."""
import asyncio
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from deploy.stack import BIN, ROOT, RedisServer, Stack, free_port, private_dir, stop_pid, wait_for
from tests.clients import all_workers, close_clients, next_messages, open_clients
from ws4redis_server.testing import connect

CORES = 8
SOCKETS = 400  # 50 times the worker's cores


def test_a_worker_with_8_cores_holds_400_sockets() -> None:
    redis = RedisServer().start()
    stack = Stack(free_port(), redis.url, run_dir=private_dir("ws4r-detached-"),
                  static_root=os.environ["STATIC_ROOT"], env={"WS_WORKERS": "1", "WS_GEVENT": str(CORES)},
                  nginx_workers=1)
    facility = "detached" + uuid.uuid4().hex[:8]
    try:
        stack.start()
        all_workers(stack, "websocket")

        async def scenario() -> None:
            clients = await open_clients([f"{stack.ws_url}/ws/{facility}?subscribe-broadcast"] * SOCKETS)
            try:
                # The handshakes are over and their cores free: a handler socket still opens.
                with connect(f"{stack.ws_url}/ws/echo/") as ws:
                    assert ws.recv(timeout=10) == "Hello!"
                    ws.send("still here")
                    assert ws.recv(timeout=10) == "1. still here"
                for number in range(3):
                    redis.client().publish(f"broadcast:{facility}", f"message {number}")
                    assert await next_messages(clients, 20) == [f"message {number}"] * SOCKETS
                assert all(client.is_open for client in clients)
            finally:
                await close_clients(clients)
            assert all(client.close_code == 1000 for client in clients), {client.close_code for client in clients}

        asyncio.run(scenario())
        assert "Traceback" not in (stack.run_dir / "uwsgi.log").read_text()
    finally:
        stack.stop()
        redis.stop()


def start_websocket_instance(redis_url: str, port: int, *options: str) -> tuple[subprocess.Popen, Path]:
    """A WebSocket instance on its own (its socket on ``port`` among ``options``); returns it once
    its worker is ready, and its log."""
    run_dir = private_dir("ws4r-http-socket-")
    env = Stack(port, redis_url, run_dir=run_dir, static_root=os.environ["STATIC_ROOT"]).environ()
    log = run_dir / "uwsgi.log"
    with open(log, "ab") as out:
        uwsgi = subprocess.Popen(
            [str(BIN / "uwsgi"), "--master", "--processes", "1", "--gevent-early-monkey-patch", "--lazy-apps",
             "--need-app", "--die-on-term", "--module", "ws4redis_server.wsgi:application", "--chdir", str(ROOT),
             *options],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "WebSocket worker ready" in log.read_text(), 60, "the WebSocket worker", log)
    except BaseException:
        stop_pid(uwsgi, signal.SIGINT)
        raise
    return uwsgi, log


@pytest.mark.parametrize("option", ["http-socket", "http11-socket"])
def test_a_websocket_instance_on_an_http_socket_serves_more_sockets_than_cores(option: str) -> None:
    """ws4redis sites ran the WebSocket instance on an ``http-socket`` behind a proxy: sockets are
    detached there too. On ``http11-socket`` uWSGI keeps a connection's descriptor after its
    request to read the next one, so a socket stays with its request (and holds its core)."""
    redis = RedisServer().start()
    cores = 4
    facility = "http" + uuid.uuid4().hex[:8]
    sockets = cores * 5 if option == "http-socket" else cores
    try:
        port = free_port()
        uwsgi, log = start_websocket_instance(redis.url, port, f"--{option}", f"127.0.0.1:{port}",
                                              "--gevent", str(cores))
        try:
            async def scenario() -> None:
                clients = await open_clients([f"ws://127.0.0.1:{port}/ws/{facility}?subscribe-broadcast"] * sockets)
                try:
                    wait_for(lambda: redis.client().pubsub_numsub(f"broadcast:{facility}")[0][1] == 1, 20,
                             "the worker's subscription")
                    redis.client().publish(f"broadcast:{facility}", "over http")
                    assert await next_messages(clients, 20) == ["over http"] * sockets
                finally:
                    await close_clients(clients)
                assert all(client.close_code == 1000 for client in clients), {c.close_code for c in clients}

            asyncio.run(scenario())
            assert "Traceback" not in log.read_text()
        finally:
            stop_pid(uwsgi, signal.SIGINT)
    finally:
        redis.stop()


def test_options_that_recycle_workers_are_named_in_the_log() -> None:
    """Each socket's handshake is one request: max-requests would recycle a worker, closing its
    sockets. The worker says so when it starts."""
    redis = RedisServer().start()
    try:
        port = free_port()
        uwsgi, log = start_websocket_instance(redis.url, port, "--http-socket", f"127.0.0.1:{port}",
                                              "--gevent", "4", "--max-requests", "1000")
        stop_pid(uwsgi, signal.SIGINT)
        assert "uWSGI option(s) max-requests set on the WebSocket instance" in log.read_text()
    finally:
        redis.stop()


def test_a_worker_at_its_file_limit_answers_503_with_retry_after() -> None:
    """uWSGI's max-fd sets the worker's file limit: 300 files, 256 of them kept for other things,
    leave room for 44 sockets. The 45th handshake gets 503 with Retry-After; the 44 stay served,
    and a place freed is taken again."""
    import http.client

    from ws4redis_server.server import RESERVED_FILES

    redis = RedisServer().start()
    facility = "full" + uuid.uuid4().hex[:8]
    room = 300 - RESERVED_FILES
    try:
        port = free_port()
        uwsgi, log = start_websocket_instance(redis.url, port, "--http-socket", f"127.0.0.1:{port}",
                                              "--gevent", "4", "--max-fd", "300")
        try:
            async def scenario() -> None:
                url = f"ws://127.0.0.1:{port}/ws/{facility}?subscribe-broadcast"
                clients = await open_clients([url] * room)
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    conn.request("GET", f"/ws/{facility}?subscribe-broadcast", headers={
                        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
                    response = conn.getresponse()
                    assert response.status == 503
                    assert response.getheader("Retry-After") == "1"
                    assert "file limit" in response.read().decode()
                    conn.close()
                    redis.client().publish(f"broadcast:{facility}", "still served")
                    assert await next_messages(clients, 20) == ["still served"] * room
                    await clients.pop().close(timeout=5)
                    clients.extend(await open_clients([url]))  # the freed place is taken again
                finally:
                    await close_clients(clients)

            asyncio.run(scenario())
        finally:
            stop_pid(uwsgi, signal.SIGINT)
    finally:
        redis.stop()
