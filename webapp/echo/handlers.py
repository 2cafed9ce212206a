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
