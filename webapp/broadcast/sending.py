"""Publishing broadcasts to the open pages, through Redis on facility ``broadcast``.

Every page subscribes to the facility's broadcast, user and group channels; a broadcast goes to
the channels of its audience as JSON (``Broadcast.as_payload``), persisted until it expires so
that a socket connecting later gets it too.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from ws4redis_server import RedisPublisher, delivery_count, get_redis, receipts

from .models import Audience, Broadcast

FACILITY = "broadcast"
# Seconds after the send, and after the count last grew, during which more deliveries may still
# be counted: each WebSocket worker adds its own every 0.2 s, and a large fan-out takes a while.
SETTLING = 5
_DELETE_IF_UNCHANGED = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class NotSendable(Exception):
    """The broadcast cannot be sent (it has expired, or its audience names nobody)."""


def publisher_for(broadcast: Broadcast) -> RedisPublisher:
    """Returns a publisher on the channels of ``broadcast``'s audience."""
    if broadcast.audience == Audience.USERS:
        return RedisPublisher(facility=FACILITY, users=list(broadcast.users.all()))
    if broadcast.audience == Audience.GROUPS:
        return RedisPublisher(facility=FACILITY, groups=list(broadcast.groups.all()))
    return RedisPublisher(facility=FACILITY, broadcast=True)


def send(broadcast: Broadcast, now: datetime | None = None) -> str:
    """Publishes ``broadcast`` to its audience's open pages, kept for pages opened before it
    expires, and records when it was sent and the receipt id of this copy. Returns the receipt
    id; raises NotSendable, or redis.RedisError when Redis cannot be reached."""
    now = now or timezone.now()
    if broadcast.expires_at is not None and broadcast.expires_at <= now:
        raise NotSendable(f"“{broadcast}” has expired")
    publisher = publisher_for(broadcast)
    if not publisher.channels:
        raise NotSendable(f"“{broadcast}” has no recipients")
    # None: no expiry of its own, so Redis keeps it WS4REDIS_EXPIRE seconds, as the site shows it.
    expire = math.ceil((broadcast.expires_at - now).total_seconds()) if broadcast.expires_at else None
    previous = broadcast.sent_at
    broadcast.sent_at = now
    try:
        receipt_id = publisher.publish_message(
            json.dumps(broadcast.as_payload()), expire=expire, count_deliveries=True
        )
    except Exception:
        broadcast.sent_at = previous
        raise
    broadcast.receipt_id = receipt_id
    broadcast.save(update_fields=["sent_at", "receipt_id"])
    return receipt_id


def withdraw(broadcast: Broadcast) -> None:
    """Takes ``broadcast`` off the pages showing it and off the copies kept for pages opened
    later; call it before deleting it (its audience is read from the database). Raises
    redis.RedisError when Redis cannot be reached."""
    publisher = publisher_for(broadcast)
    publisher.publish_message(json.dumps({"id": broadcast.pk, "withdrawn": True}), expire=0)
    if not publisher.channels:
        return
    client = get_redis()
    # One GET per channel: on a Redis Cluster the channels' keys are in different slots, which
    # one MGET cannot span.
    with client.pipeline(transaction=False) as pipe:
        for channel in publisher.channels:
            pipe.get(channel)
        kept_values = pipe.execute()
    for channel, kept in zip(publisher.channels, kept_values, strict=True):
        if kept is not None and _id_of(kept) == broadcast.pk:
            # Atomically, so that a broadcast sent meanwhile is not the one dropped.
            client.eval(_DELETE_IF_UNCHANGED, 1, channel, kept)


def _id_of(message: bytes | str) -> object:
    try:
        return json.loads(message).get("id")
    except (ValueError, AttributeError):
        return None


def deliveries(broadcast: Broadcast) -> int | None:
    """Returns how many sockets received the last copy of ``broadcast``, None if never sent;
    raises redis.RedisError when Redis cannot be reached."""
    if not broadcast.receipt_id:
        return None
    return delivery_count(broadcast.receipt_id)


@dataclass(frozen=True)
class DeliveryState:
    """How many sockets received a broadcast's last copy, and whether that can still change."""

    count: int
    last_counted: datetime | None  # when a worker last added to the count (None: nothing yet)
    final: bool


def delivery_state(broadcast: Broadcast, now: datetime | None = None) -> DeliveryState | None:
    """Returns the delivery count of ``broadcast``'s last copy and whether it is final (no send
    nor count for SETTLING seconds), None if it was never sent; raises redis.RedisError."""
    if not broadcast.receipt_id or broadcast.sent_at is None:
        return None
    now = now or timezone.now()
    key = receipts.KEY + broadcast.receipt_id
    with get_redis().pipeline(transaction=False) as pipe:
        pipe.get(key)
        pipe.pttl(key)
        count, ttl_ms = pipe.execute()
    last_counted = None
    if count is not None and ttl_ms > 0:
        # Each count renews the counter's expiry to receipts.TTL: the time left tells its age.
        last_counted = now - timedelta(milliseconds=receipts.TTL * 1000 - ttl_ms)
    settled_since = max(broadcast.sent_at, last_counted or broadcast.sent_at)
    return DeliveryState(int(count or 0), last_counted, now - settled_since >= timedelta(seconds=SETTLING))
