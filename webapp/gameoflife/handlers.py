"""WebSocket handlers of the Game of Life: reset a run, serve a cell, feed a watching page.

They relay and count (see :mod:`.protocol`); the rules of the game live in the cells only.
"""
from __future__ import annotations

import logging

import redis

from ws4redis_server import CloseCode, WebSocket, websocket

from . import protocol, runs
from .relay import RUNNING, SUBSCRIBING, Listening, Relay, get_relay

logger = logging.getLogger("webapp.gameoflife")

REDIS_WAIT = 5.0  # seconds a socket waits for the relay's subscription before giving up


@websocket
def reset(ws: WebSocket) -> None:
    """Starts a new run of the size the client sends, answers ``run <id>`` and closes."""
    message = ws.recv()
    if message is None:
        return
    try:
        size = int(message) if isinstance(message, str) else 0
    except ValueError:
        size = 0
    if not 1 <= size <= protocol.MAX_SIZE:
        ws.close(CloseCode.POLICY_VIOLATION, f"send the grid's side, a whole number from 1 to {protocol.MAX_SIZE}")
        return
    try:
        run = runs.new_run(size)
    except redis.RedisError as exc:
        ws.close(CloseCode.TRY_AGAIN_LATER, f"Redis unavailable: {exc}"[:120])
        return
    ws.send(f"{protocol.RUN} {run.id}")


@websocket
def cell(ws: WebSocket, run_id: int, index: int) -> None:
    """Serves cell ``index`` of run ``run_id``: counts it, registers what it listens to, relays
    its states. Closes with 1008 and a reason on anything out of protocol."""
    relay = get_relay()
    try:
        if not relay.ready(REDIS_WAIT):
            raise redis.ConnectionError("no subscription to the run's channel")
        run = runs.current_run()
    except redis.RedisError as exc:
        ws.close(CloseCode.TRY_AGAIN_LATER, f"Redis unavailable: {exc}"[:120])
        return
    if run is None or run.id != run_id:
        ws.close(CloseCode.POLICY_VIOLATION, f"run {run_id} is not the current run")
        return
    if not 0 <= index < run.cells:
        ws.close(CloseCode.POLICY_VIOLATION, f"cell {index} is not in run {run_id} (0 to {run.cells - 1})")
        return
    if not relay.adopt(run_id):
        ws.close(CloseCode.POLICY_VIOLATION, f"run {run_id} is over")
        return
    subscription: list[Listening] = []
    relay.add_cell(ws)
    joined = False
    try:
        joined, _ = runs.count(run, protocol.CONNECTED, index)
        problem = (_serve_cell(ws, relay, run, str(index), subscription) if joined
                   else f"cell {index} of run {run.id} is already connected")
    except runs.StaleRun as exc:
        problem = str(exc)
    except redis.RedisError as exc:
        ws.close(CloseCode.TRY_AGAIN_LATER, f"Redis unavailable: {exc}"[:120])
        return
    finally:
        relay.remove_cell(run_id, ws, subscription[0] if subscription else None)
        if joined:
            runs.leave(run, index)
    if problem:
        ws.close(CloseCode.POLICY_VIOLATION, problem[:120])


def _serve_cell(ws: WebSocket, relay: Relay, run: runs.Run, index: str,
                subscription: list[Listening]) -> str | None:
    """The cell's message loop, once it is counted connected; returns why the socket must be
    closed, or None when the peer has gone. ``subscription`` receives what the cell listens to
    once it has subscribed."""
    post, is_state, prefix = relay.post, protocol.STATE_MESSAGE.match, index + ":"
    listening: Listening | None = None
    while True:
        message = ws.recv()
        if message is None:
            return None
        if not isinstance(message, str):
            return "a message that is not UTF-8 text"
        # The hot path: one state per generation, relayed as is with the cell's index.
        if is_state(message):
            if relay.phase != RUNNING:
                return "state sent before the server said 'run'"
            post(prefix + message)
            if listening is not None:
                listening.sent(message[:-2])
            continue
        if message.split(" ", 1)[0] != protocol.SUBSCRIBE:
            return f"unexpected message {message[:40]!r}"
        if subscription or relay.phase != SUBSCRIBING:
            return "subscribe once, after the server says 'sub'"
        indices = message.split()[1:]
        if len(indices) > protocol.MAX_SUBSCRIPTIONS:
            return f"subscribe to {protocol.MAX_SUBSCRIPTIONS} cells at most"
        if not all(i.isdigit() and int(i) < run.cells for i in indices):
            return f"cells are numbered 0 to {run.cells - 1}"
        # As the relay writes them, so that "007" and "7" are one cell.
        listening = relay.listen(ws, [str(int(i)) for i in indices])
        subscription.append(listening)
        runs.count(run, protocol.SUBSCRIBED, int(index))


@websocket
def watch(ws: WebSocket) -> None:
    """Sends a page the current run's state, then every event of the runs' channel."""
    ws.subscribe(runs.channel())
    try:
        for event in runs.snapshot():
            ws.send(event)
    except redis.RedisError as exc:
        ws.close(CloseCode.TRY_AGAIN_LATER, f"Redis unavailable: {exc}"[:120])
        return
    while ws.recv() is not None:
        pass  # the page sends nothing; its socket stays open until it leaves
