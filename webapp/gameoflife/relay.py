"""This WebSocket worker process's share of the current Game of Life run.

Each process holds some of the run's cell sockets. The relay keeps, for the local sockets only,
who listens to whom (as the cells asked: it knows nothing about grids or rules), gathers the
states its cells send for a few milliseconds into one message on the runs' channel, and fans
every batch it receives from Redis, its own included, out to the local listeners. A listener
gets its states in one frame once each cell it listens to has sent something new: a cell then
receives one frame per generation instead of one per neighbour. So Redis carries hundreds of
messages a second where the cells exchange tens of thousands of states, and a page watching the
run just subscribes to the same channel.
"""
from __future__ import annotations

import logging
import time

import gevent
from gevent.event import Event

from ws4redis_server import publish
from ws4redis_server.connection import GOING_AWAY
from ws4redis_server.handlers import WebSocket
from ws4redis_server.hub import Hub, get_hub

from . import protocol, runs

logger = logging.getLogger("webapp.gameoflife")

CONNECTING, SUBSCRIBING, RUNNING = "connecting", "subscribing", "running"
READY_POLL = 0.25  # seconds of each wait for the subscription to the runs' channel
PUBLISH_DELAY = 0.01  # seconds the states of local cells gather before they are published
MAX_WAIT = 1.0  # seconds at most a state waits for others bound to the same socket


class Relay:
    """A hub listener on the runs' channel; one per process (see :func:`get_relay`)."""

    def __init__(self, hub: Hub, channel: str) -> None:
        self.hub = hub
        self.channel = channel
        self.run = 0
        self.phase = CONNECTING
        self.cells: set[WebSocket] = set()
        # Cell index (as sent on the wire) → the local sockets listening to it, once per request.
        self.listeners: dict[str, list[WebSocket]] = {}
        self.sources: dict[WebSocket, int] = {}  # socket → how many cells it listens to
        self.outgoing: list[str] = []
        # Per socket: states not yet sent to it, the cells they come from, since when.
        self.pending: dict[WebSocket, tuple[list[str], set[str], float]] = {}
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
                ws.close(GOING_AWAY, f"run {run} replaced run {self.run}")
            self.run, self.phase = run, CONNECTING
            self.cells, self.listeners, self.sources = set(), {}, {}
            self.outgoing, self.pending = [], {}
        return run == self.run

    def add_cell(self, ws: WebSocket) -> None:
        self.cells.add(ws)

    def remove_cell(self, run: int, ws: WebSocket, indices: list[str]) -> None:
        """Forgets a cell socket of ``run`` and what it listened to."""
        if run != self.run:
            return
        self.cells.discard(ws)
        self.sources.pop(ws, None)
        self.pending.pop(ws, None)
        for index in indices:
            listeners = self.listeners.get(index)
            if listeners and ws in listeners:
                listeners.remove(ws)

    def listen(self, ws: WebSocket, indices: list[str]) -> None:
        """Relays to ``ws`` the states of the cells at ``indices`` (a repeated index is relayed as
        many times as it is repeated)."""
        for index in indices:
            self.listeners.setdefault(index, []).append(ws)
        self.sources[ws] = len(set(indices))

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
        """Queues each state of a batch for the local sockets listening to its cell. A socket
        gets its queue in one frame once every cell it listens to has something new in it:
        for a cell, that is all it needs for its next generation, so it receives one frame
        per generation rather than one per neighbour."""
        # Holding a queue back costs a cell nothing: it cannot compute its next generation before
        # each cell it listens to has sent its state. Nor can it stall a run: a cell whose state
        # went out early, with the previous frame, sends its next one once this cell has moved on.
        listeners, sources, pending = self.listeners, self.sources, self.pending
        now = time.monotonic()
        for token in body.split(" "):
            source = token[:token.find(":")]
            targets = listeners.get(source)
            if not targets:
                continue
            for ws in targets:
                queued = pending.get(ws)
                if queued is None:
                    queued = pending[ws] = ([token], {source}, now)
                else:
                    queued[0].append(token)
                    queued[1].add(source)
                if len(queued[1]) == sources[ws]:
                    del pending[ws]
                    ws.send(" ".join(queued[0]))

    def _send_stale_forever(self) -> None:
        """Sends queues that have waited MAX_WAIT: what a listener gets must not depend on
        every cell it listens to going on (one may have stopped)."""
        while True:
            gevent.sleep(MAX_WAIT / 2)
            oldest = time.monotonic() - MAX_WAIT
            stale = [ws for ws, (_, _, since) in self.pending.items() if since < oldest]
            for ws in stale:
                ws.send(" ".join(self.pending.pop(ws)[0]))

    # -- events in (the hub's reader greenlet; must not block) -----------------------------------

    def deliver(self, channel: str, data: bytes, is_text: bool) -> None:
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
