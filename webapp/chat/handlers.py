"""The presence socket of a room page: the user counts as online in the room while it is open.

Each room page of a logged-in reader opens ``/ws/chat/presence/<room>/`` beside its pub/sub
socket. The handler joins the room's presence, sends the snapshot to its own page at once (the
page may not hear the published one if its other socket is still connecting), refreshes its
entry while the socket lives, and leaves when it closes. Changes reach every page of the room as
presence snapshots on the room's channel (see ``presence``).
"""
from __future__ import annotations

import json
import logging
import uuid

import gevent
import redis
from django.db import connections

from ws4redis_server import CloseCode, WebSocket, websocket

from .models import Room
from .presence import Presence

logger = logging.getLogger("webapp.chat")


def _refusal(ws: WebSocket, slug: str) -> str | None:
    """Returns why the socket's user may not be counted in room ``slug``, or None if they may."""
    if not ws.identity.is_authenticated:
        return "Log in to appear online"
    try:
        room = Room.objects.filter(slug=slug).select_related("group").first()
        if room is None:
            return f"There is no chat room {slug!r}"
        if not room.can_read(ws.request.user):
            return f"Only members of the group of room {slug!r} may join it"
        return None
    finally:
        # Checked once, at connection time; the socket may live for hours without a connection.
        connections.close_all()


def _refresh_forever(presence: Presence, username: str, connection_id: str) -> None:
    while True:
        gevent.sleep(presence.ttl / 3)
        try:
            presence.refresh(username, connection_id)
        except redis.RedisError as exc:
            # The entry expires meanwhile; the next refresh counts the user again.
            logger.warning("presence refresh failed in %s: %s", presence.slug, exc)


@websocket
def presence(ws: WebSocket, slug: str) -> None:
    """Counts the socket's user online in room ``slug`` while the socket is open; closes with
    1008 if they may not read the room, 1013 if Redis cannot be reached."""
    refusal = _refusal(ws, slug)
    if refusal is not None:
        ws.close(CloseCode.POLICY_VIOLATION, refusal)
        return
    username = ws.identity.username
    assert username is not None
    room = Presence(slug)
    connection_id = uuid.uuid4().hex
    try:
        ws.send(json.dumps(room.join(username, connection_id).as_event()))
    except redis.RedisError:
        ws.close(CloseCode.TRY_AGAIN_LATER, "Presence unavailable: Redis unreachable")
        return
    refresher = gevent.spawn(_refresh_forever, room, username, connection_id)
    try:
        while ws.recv() is not None:
            pass  # the page sends nothing but heartbeats, which the loop answers itself
    finally:
        refresher.kill()
        try:
            room.leave(username, connection_id)
        except redis.RedisError as exc:
            logger.warning("presence leave failed in %s (the entry expires): %s", slug, exc)
