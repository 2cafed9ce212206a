"""No message loss: django-websocket-redis loses most of a burst (its bug #2); we lose none."""
import threading
import time
import uuid

from ws4redis_server.testing import connect

SOCKETS = 50
MESSAGES = 10_000


def test_burst_of_10000_reaches_50_sockets_complete_and_in_order(stack, redis_server) -> None:
    name = "burst" + uuid.uuid4().hex[:8]
    channel = f"broadcast:{name}"
    sockets = [connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast", timeout=30) for _ in range(SOCKETS)]
    received: list[list[str]] = [[] for _ in sockets]

    def read(index: int) -> None:
        ws = sockets[index]
        try:
            while len(received[index]) < MESSAGES:
                received[index].append(ws.recv(timeout=60))
        except TimeoutError:
            pass

    try:
        # Each worker process holds one subscription, shared by its sockets.
        hubs = redis_server.client().pubsub_numsub(channel)[0][1]
        assert 1 <= hubs <= 3
        readers = [threading.Thread(target=read, args=(i,)) for i in range(SOCKETS)]
        for reader in readers:
            reader.start()
        client = redis_server.client()
        started = time.perf_counter()
        with client.pipeline(transaction=False) as pipe:
            for number in range(MESSAGES):
                pipe.publish(channel, f"m{number}")
            pipe.execute()
        for reader in readers:
            reader.join(120)
        elapsed = time.perf_counter() - started
    finally:
        for ws in sockets:
            ws.close()
    expected = [f"m{number}" for number in range(MESSAGES)]
    for index, messages in enumerate(received):
        assert len(messages) == MESSAGES, f"socket {index} got {len(messages)} of {MESSAGES}"
        assert messages == expected, f"socket {index} got them out of order"
    print(f"\nburst: {SOCKETS * MESSAGES} deliveries over {hubs} worker subscriptions in {elapsed:.2f}s "
          f"({SOCKETS * MESSAGES / elapsed:,.0f}/s, client and server on the same machine)")


def test_burst_of_client_messages_is_relayed_in_full(stack, make_user, login_cookie) -> None:
    """uWSGI returns one message per websocket_recv_nb: the loop must drain them all."""
    name = "cburst" + uuid.uuid4().hex[:8]
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") as reader, \
            connect(f"{stack.ws_url}/ws/{name}?publish-broadcast", session=login_cookie(make_user())) as writer:
        for number in range(500):
            writer.send(f"c{number}")
        assert [reader.recv(timeout=30) for _ in range(500)] == [f"c{number}" for number in range(500)]
