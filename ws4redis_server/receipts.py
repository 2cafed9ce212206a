"""Delivery receipts: how many sockets received a message, summed over every worker process.

A publisher asks for them with ``publish_message(..., count_deliveries=True)``: the message's
notice on Redis carries a receipt id (see ``wire``; the message itself stays as published), and
each hub adds the number of its local deliveries to a Redis counter under that id. Redis's own
PUBLISH reply only counts subscribed processes, not sockets.
"""
from __future__ import annotations

from .redis_client import get_redis

KEY = "ws4redis:receipts:"
TTL = 7 * 24 * 3600  # seconds a counter is kept after its last delivery


def delivery_count(message_id: str) -> int:
    """Returns how many sockets have received the message ``message_id`` so far."""
    value = get_redis().get(KEY + message_id)
    return int(value) if value is not None else 0
