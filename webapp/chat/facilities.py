"""The ws4redis facilities of the chat, and the Redis channels they map to.

A room ``general`` is the facility ``chat.general``: its broadcast channel carries the room's
messages and presence snapshots. Private messages use the facility ``chat-direct`` on the user
audience, ``user:<username>:chat-direct``, which a socket only ever resolves to its own user.
"""
from __future__ import annotations

from ws4redis_server import channel_name, get_settings

ROOM_PREFIX = "chat."
DIRECT = "chat-direct"


def room_facility(slug: str) -> str:
    """Returns the facility of the room ``slug``."""
    return f"{ROOM_PREFIX}{slug}"


def room_of(facility: str) -> str | None:
    """Returns the room slug of a room facility, None for any other facility."""
    if facility.startswith(ROOM_PREFIX):
        return facility[len(ROOM_PREFIX):]
    return None


def room_channel(slug: str) -> str:
    """Returns the Redis channel every page of the room ``slug`` listens on."""
    return channel_name(get_settings().prefix, "broadcast", room_facility(slug))
