"""The echo handler of django-c10k-demo, the server side of the ``testecho`` load test."""
from ws4redis_server import WebSocket, websocket

ROUNDS = 3


@websocket
def echo(ws: WebSocket) -> None:
    """Send ``Hello!``, answer three messages as ``1. <msg>`` … ``3. <msg>``, send ``Goodbye!``."""
    ws.send("Hello!")
    for number in range(1, ROUNDS + 1):
        message = ws.recv()
        if message is None:
            return
        ws.send(f"{number}. {message}")
    ws.send("Goodbye!")


@websocket
def raw_echo(ws: WebSocket) -> None:
    """Send back every message as it came, text as text and binary as binary, until the peer
    closes (the conformance tests' handler)."""
    while (message := ws.recv()) is not None:
        ws.send(message)
