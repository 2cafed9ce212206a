"""Delivery receipts: how many sockets received a message, summed over every worker process.

A publisher asks for them with ``publish_message(..., count_deliveries=True)``: the message goes
into Redis in an envelope carrying its id, the hub strips the envelope before fan-out (sockets
get the message unchanged) and adds the number of local deliveries to a Redis counter. Redis's
own PUBLISH reply only counts subscribed processes, not sockets.
"""
from __future__ import annotations

import uuid

from .redis_client import get_redis

ENVELOPE = b"\x00ws4r:r:"
KEY = "ws4redis:receipts:"
TTL = 7 * 24 * 3600  # seconds a counter is kept after its last delivery


def new_id() -> str:
    return uuid.uuid4().hex


def wrap(message_id: str, message: bytes) -> bytes:
    """Returns ``message`` in the envelope that asks the hubs to count its deliveries."""
    return ENVELOPE + message_id.encode("ascii") + b"\x00" + message


def unwrap(data: bytes) -> tuple[str | None, bytes]:
    """Returns (receipt id or None, the message as published)."""
    if not data.startswith(ENVELOPE):
        return None, data
    header, _, message = data[len(ENVELOPE):].partition(b"\x00")
    return header.decode("ascii", "replace"), message


def delivery_count(message_id: str) -> int:
    """Returns how many sockets have received the message ``message_id`` so far."""
    value = get_redis().get(KEY + message_id)
    return int(value) if value is not None else 0
