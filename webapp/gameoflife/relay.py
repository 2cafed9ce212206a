"""This WebSocket worker process's share of the current Game of Life run.

Each process holds some of the run's cell sockets. The relay keeps, for the local sockets only,
who listens to whom (as the cells asked: it knows nothing about grids or rules), gathers the
states its cells send for a few milliseconds into one message on the runs' channel, and fans
every batch it receives from Redis, its own included, out to the local listeners.

A listener gets its states in one frame, once it has every state of the generation it waits
for: the relay reads the generation in each ``<index>:<step>:<state>`` (never the state) and
knows which generation a cell waits for from the last one it sent. So a cell receives one frame
per generation instead of one per neighbour, Redis carries hundreds of messages a second where
the cells exchange tens of thousands of states, and a page watching the run just subscribes to
the same channel.
"""
from __future__ import annotations

import logging
import time

import gevent
from gevent.event import Event

from ws4redis_server import CloseCode, Hub, WebSocket, get_hub, publish

from . import protocol, runs

logger = logging.getLogger("webapp.gameoflife")

CONNECTING, SUBSCRIBING, RUNNING = "connecting", "subscribing", "running"
READY_POLL = 0.25  # seconds of each wait for the subscription to the runs' channel
PUBLISH_DELAY = 0.01  # seconds the states of local cells gather before they are published
MAX_WAIT = 1.0  # seconds a queue may stand still before it is sent as it is


class Listening:
    """One local socket's subscription: what it has received of the generation it waits for
    (``current``: the last one it sent) and of the next, and the states not yet sent to it."""

    __slots__ = ("ws", "indices", "need", "current", "following", "have", "ahead", "queue", "flushes")

    def __init__(self, ws: WebSocket, indices: list[str]) -> None:
        self.ws = ws
        self.indices = indices
        self.need = len(indices)  # states per generation: one per subscription, repeats included
        self.current, self.following = "0", "1"  # as they appear on the wire
        self.have = self.ahead = 0
        self.queue: list[str] = []
        self.flushes = 0

    def receive(self, token: str, step: str) -> None:
        """Queues a state; sends the queue once the current generation is complete."""
        self.queue.append(token)
        if step == self.current:
            self.have += 1
            if self.have == self.need:
                self.flush()
        elif step == self.following:
            self.ahead += 1

    def sent(self, step: str) -> None:
        """Notes that the cell sent its state of generation ``step``: it now waits for the
        states of that generation (some of which it may have already)."""
        if step == self.current:
            return
        if step == self.following:
            self.have, self.ahead = self.ahead, 0
        else:  # out of step: count afresh (the stale queue sender covers what is missed)
            self.have = self.ahead = 0
        self.current, self.following = step, str(int(step) + 1)
        if self.have == self.need and self.queue:
            self.flush()

    def flush(self) -> None:
        self.ws.send(" ".join(self.queue))
        self.queue.clear()  # the same list: fewer objects for the garbage collector to follow
        self.flushes += 1


class Relay:
    """A hub listener on the runs' channel; one per process (see :func:`get_relay`)."""

    def __init__(self, hub: Hub, channel: str) -> None:
        self.hub = hub
        self.channel = channel
        self.run = 0
        self.phase = CONNECTING
        self.cells: set[WebSocket] = set()
        # Cell index (as sent on the wire) → the local subscriptions to it, once per request.
        self.listeners: dict[str, list[Listening]] = {}
        self.outgoing: list[str] = []
        self._outgoing_ready = Event()
        hub.subscribe(channel, self)
        self._greenlets = [gevent.spawn(self._publish_forever), gevent.spawn(self._send_stale_forever)]

    def ready(self, timeout: float) -> bool:
        """Waits until Redis has confirmed the subscription to the channel; False if it has not
        within ``timeout`` seconds (Redis unreachable)."""
        deadline = time.monotonic() + timeout
        # In short waits: while the hub (re)connects it answers False at once, and a reconnection
        # replaces the confirmation a longer wait would be waiting for.
        while not self.hub.wait_subscribed([self.channel], READY_POLL):
            if time.monotonic() >= deadline:
                return False
            gevent.sleep(0.05)
        return True

    # -- cells (called from their handlers) ------------------------------------------------------

    def adopt(self, run: int) -> bool:
        """Makes ``run`` this process's run if it is newer, closing the sockets of the older one.
        Returns False if this process already serves a newer run."""
        if run > self.run:
            for ws in self.cells:
                ws.close(CloseCode.GOING_AWAY, f"run {run} replaced run {self.run}")
            self.run, self.phase = run, CONNECTING
            self.cells, self.listeners, self.outgoing = set(), {}, []
        return run == self.run

    def add_cell(self, ws: WebSocket) -> None:
        self.cells.add(ws)

    def remove_cell(self, run: int, ws: WebSocket, listening: Listening | None) -> None:
        """Forgets a cell socket of ``run`` and what it listened to."""
        if run != self.run:
            return
        self.cells.discard(ws)
        if listening is None:
            return
        for index in listening.indices:
            subscriptions = self.listeners.get(index)
            if subscriptions and listening in subscriptions:
                subscriptions.remove(listening)

    def listen(self, ws: WebSocket, indices: list[str]) -> Listening:
        """Relays to ``ws`` the states of the cells at ``indices`` (a repeated index is relayed as
        many times as it is repeated)."""
        listening = Listening(ws, indices)
        for index in indices:
            self.listeners.setdefault(index, []).append(listening)
        return listening

    def post(self, token: str) -> None:
        """Queues a cell's ``<index>:<step>:<state>`` for the next batch."""
        self.outgoing.append(token)
        self._outgoing_ready.set()

    # -- batches out -----------------------------------------------------------------------------

    def _publish_forever(self) -> None:
        while True:
            self._outgoing_ready.wait()
            # Let the states of a few milliseconds gather: one message for all of them.
            gevent.sleep(PUBLISH_DELAY)
            self._outgoing_ready.clear()
            tokens, self.outgoing = self.outgoing, []
            if not tokens:
                continue
            try:
                publish(self.channel, f"{protocol.STATES} {self.run} {' '.join(tokens)}")
            except Exception as exc:  # Redis down: the cells stall, and the run is lost
                logger.error("Game of Life run %d: %d states not published: %s", self.run, len(tokens), exc)

    # -- batches in ------------------------------------------------------------------------------

    def _fan_out(self, body: str) -> None:
        """Queues each state of a batch for the local subscriptions to its cell."""
        listeners = self.listeners
        for token in body.split(" "):
            colon = token.find(":")
            subscriptions = listeners.get(token[:colon])
            if subscriptions:
                step = token[colon + 1:-2]
                for listening in subscriptions:
                    listening.receive(token, step)

    def _send_stale_forever(self) -> None:
        """Sends the queues that have not moved for MAX_WAIT (no state in, nothing sent): a
        listener must not depend on every cell it listens to going on (one may have stopped).
        A queue that still fills is not stale: on a grid slower than a generation per MAX_WAIT,
        sending it early would only add frames."""
        waiting: dict[Listening, tuple[int, int]] = {}
        while True:
            gevent.sleep(MAX_WAIT)
            for listening, (flushes, queued) in waiting.items():
                if listening.queue and listening.flushes == flushes and len(listening.queue) == queued:
                    listening.flush()
            waiting = {listening: (listening.flushes, len(listening.queue))
                       for subscriptions in self.listeners.values()
                       for listening in subscriptions if listening.queue}

    # -- events in (the hub's reader greenlet; must not block) -----------------------------------

    def deliver(self, channel: str, data: bytes, is_text: bool, message_id: str | None = None) -> None:
        kind, _, rest = data.decode("utf-8", "replace").partition(" ")
        run_word, _, body = rest.partition(" ")
        try:
            run = int(run_word)
        except ValueError:
            return
        if kind == protocol.STATES:
            if run == self.run:
                self._fan_out(body)
        elif kind == protocol.NEW_RUN:
            self.adopt(run)
        elif run == self.run:
            if kind == protocol.SUBSCRIBE_ALL:
                self._tell_cells(SUBSCRIBING, protocol.SUBSCRIBE)
            elif kind == protocol.START:
                self._tell_cells(RUNNING, protocol.RUN)

    def _tell_cells(self, phase: str, message: str) -> None:
        self.phase = phase
        for ws in self.cells:
            ws.send(message)


_relay: Relay | None = None


def get_relay() -> Relay:
    """Returns this process's relay, subscribed to the runs' channel."""
    global _relay
    if _relay is None:
        _relay = Relay(get_hub(), runs.channel())
    return _relay
