"""Publishing saved messages to the pages that show them, through Redis.

Messages are published once their transaction commits, so a page that hears of a message can
always load it from the history. Nothing is persisted in Redis (``expire=0``): the database is
the history, and a page fills any gap from it when its socket (re)connects.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import redis
from django.db import transaction

from ws4redis_server import RedisPublisher

from .facilities import DIRECT, room_facility
from .models import Message, PrivateMessage

logger = logging.getLogger("webapp.chat")


def publish_room_message(message: Message) -> None:
    """Sends ``message`` to every page of its room, once the transaction commits."""
    publisher = RedisPublisher(facility=room_facility(message.room.slug), broadcast=True)
    _publish_on_commit(publisher, message.as_event())


def publish_private_message(message: PrivateMessage) -> None:
    """Sends ``message`` to the sender's and the recipient's pages, once the transaction commits."""
    publisher = RedisPublisher(facility=DIRECT, users=[message.sender, message.recipient])
    _publish_on_commit(publisher, message.as_event())


def _publish_on_commit(publisher: RedisPublisher, event: dict[str, Any]) -> None:
    payload = json.dumps(event)

    def publish() -> None:
        try:
            publisher.publish_message(payload, expire=0)
        except redis.RedisError as exc:
            # Saved all the same: open pages load it when their socket reconnects.
            logger.warning("chat message %s saved but not published: %s", event["id"], exc)

    transaction.on_commit(publish)
