"""The Game of Life's wire protocol, shared by the server's handlers and the cell clients.

All messages are text frames. The server relays and counts; it never applies the rules.

Reset, ``/ws/gameoflife/reset/``: the client sends the grid's side (``"32"``); the server starts a
new run, answers ``"run <id>"`` and closes the socket. Cells and pages of older runs are closed.

Cell, ``/ws/gameoflife/cell/<run>/<index>/`` (``index`` = row × size + column, an opaque id to
the server)::

    server → cell   "sub"                      every cell of the run is connected
    cell → server   "sub <index> <index> ..."  the cells whose states it wants (repeats allowed)
    server → cell   "run"                      every cell has subscribed
    cell → server   "<step>:<state>"           its state (0 or 1) at generation <step>, from 0
    server → cell   "<index>:<step>:<state> ..."  states of the cells it listens to, batched

Watcher, ``/ws/gameoflife/watch/``, and the Redis channel every process of the run shares::

    "run <id> <size>"            a new run (the page resets)
    "connected <id> <n>"         n cells connected
    "subscribe <id>"             every cell is connected: cells, subscribe
    "subscribed <id> <n>"        n cells subscribed
    "start <id>"                 every cell has subscribed: cells, run
    "states <id> <index>:<step>:<state> ..."   a batch of states, as cells sent them
    "ended <id>"                 every cell that connected has left: the run is over
"""
from __future__ import annotations

import re

# Server → cell.
SUBSCRIBE = "sub"
RUN = "run"

# Events on the run's channel (and to watchers); the second word is always the run id.
NEW_RUN = "run"
CONNECTED = "connected"
SUBSCRIBE_ALL = "subscribe"
SUBSCRIBED = "subscribed"
START = "start"
STATES = "states"
ENDED = "ended"
# The cells that have left a run, counted like CONNECTED and SUBSCRIBED (never announced).
LEFT = "left"

# What a cell may send each generation: its step (no leading zero) and its state.
STATE_MESSAGE = re.compile(r"(?:0|[1-9]\d{0,8}):[01]\Z")
# How many cells one cell may listen to (8 for Life; room for wider neighbourhoods).
MAX_SUBSCRIPTIONS = 24
# Largest grid side a run may have: 1,048,576 sockets, far beyond one machine's files.
MAX_SIZE = 1024


def event(kind: str, run: int, *words: object) -> str:
    """Returns the event ``kind`` of ``run`` as sent on the run's channel."""
    return " ".join((kind, str(run), *map(str, words)))


def subscription(indices: list[int]) -> str:
    """Returns a cell's subscription message for the cells at ``indices``."""
    return " ".join((SUBSCRIBE, *map(str, indices)))


def state(step: int, alive: bool) -> str:
    """Returns a cell's message for its state at generation ``step``."""
    return f"{step}:{1 if alive else 0}"
