"""Who may open a socket on the chat's facilities: the ``WS4REDIS_ALLOWED_CHANNELS`` hook.

It runs once per handshake, before the upgrade; raising PermissionDenied answers 403 with the
reason. Facilities that are not the chat's pass through unchanged.

- A room (``chat.<slug>``): only ``subscribe-broadcast``, and only for users who may read the
  room (anyone for a public room, members of its group otherwise; checked in the database, so a
  member removed from the group is refused from the next connection on).
- Private messages (``chat-direct``): only ``subscribe-user``, only when logged in.
- Publishing over a chat socket is refused: messages are posted over HTTP, where they are
  validated, rate-limited and saved before they reach anyone.
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.urls import reverse

from .facilities import DIRECT, room_of
from .models import Room


def allowed_channels(request: Any, flags: list[str]) -> list[str]:
    """Returns the flags the socket keeps; raises PermissionDenied (403) if it may not open."""
    facility = request.ws4redis_facility
    if facility == DIRECT:
        _refuse_publishing(flags, reverse("chat:direct-index"))
        if not request.ws4redis_identity.is_authenticated:
            raise PermissionDenied("Log in to receive private messages")
        return [flag for flag in flags if flag == "subscribe-user"]
    slug = room_of(facility)
    if slug is None:
        return flags
    room = Room.objects.filter(slug=slug).first()
    if room is None:
        raise PermissionDenied(f"There is no chat room {slug[:50]!r}")
    _refuse_publishing(flags, reverse("chat:messages", args=[room.slug]))
    if not room.can_read(request.user):
        raise PermissionDenied(f"Only members of the group of room {room.slug!r} may subscribe to it")
    return [flag for flag in flags if flag == "subscribe-broadcast"]


def _refuse_publishing(flags: list[str], url: str) -> None:
    if any(flag.startswith("publish-") for flag in flags):
        raise PermissionDenied(f"Chat sockets only receive: post messages with POST {url}")
