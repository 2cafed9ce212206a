"""Redis channel names for facilities and audiences, and the socket URL's flags.

Pure functions, no I/O. The names are django-websocket-redis's, so publishers written for it keep
working: ``[prefix:]broadcast:<facility>``, ``[prefix:]user:<username>:<facility>``,
``[prefix:]group:<group>:<facility>``, ``[prefix:]session:<session_key>:<facility>``.

Besides, every hub listens to one control channel, ``[prefix:]ws4redis:hub``, for the library's
own notices, one per message: a verb, then its arguments, one a line (``groups-changed`` and
usernames).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

AUDIENCES = ("broadcast", "user", "group", "session")
_FACILITY = re.compile(r"[A-Za-z0-9_.\-]{1,128}\Z")


class InvalidFacility(ValueError):
    """A facility name outside letters, digits and ``-_.`` (a ``:`` would forge another channel)."""


def check_facility(facility: str) -> str:
    """Returns ``facility`` if it is safe to put in a channel name; raises InvalidFacility."""
    if not _FACILITY.match(facility):
        raise InvalidFacility(
            f"invalid facility {facility[:64]!r}: use 1 to 128 letters, digits, '-', '_' or '.'"
        )
    return facility


def channel_name(prefix: str, audience: str, facility: str, key: str | None = None) -> str:
    """Returns the Redis channel of ``facility`` for ``audience``; ``key`` names the user, group or
    session (not used for broadcast). ``prefix`` is ``''`` or ends with ``':'``."""
    if audience == "broadcast":
        return f"{prefix}broadcast:{facility}"
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r}")
    if not key:
        raise ValueError(f"audience {audience!r} needs a key")
    return f"{prefix}{audience}:{key}:{facility}"


@dataclass(frozen=True)
class Flags:
    """What a socket URL's query string asks for. Unknown flags are ignored, as in ws4redis."""

    subscribe: frozenset[str] = frozenset()
    publish: frozenset[str] = frozenset()
    echo: bool = False
    params: dict[str, str] = field(default_factory=dict)
    ids: bool = False  # each message carries its id (message history; not a permission)

    def names(self) -> list[str]:
        """Returns the channel flags as ws4redis spells them (``subscribe-user``,
        ``publish-broadcast``, ...): what ws4redis gave its WS4REDIS_ALLOWED_CHANNELS hook.
        ``echo`` is not among them, as in ws4redis."""
        names = [f"subscribe-{a}" for a in AUDIENCES if a in self.subscribe]
        return names + [f"publish-{a}" for a in AUDIENCES if a in self.publish]

    def restricted_to(self, allowed: object) -> Flags:
        """Returns these flags less the channel flags not in ``allowed`` (an iterable of flag
        names, as a WS4REDIS_ALLOWED_CHANNELS hook returns); ``echo`` is kept unless there is
        nothing left to publish."""
        keep = {str(name).lower() for name in allowed}  # type: ignore[attr-defined]
        publish = frozenset(a for a in self.publish if f"publish-{a}" in keep)
        return Flags(
            frozenset(a for a in self.subscribe if f"subscribe-{a}" in keep),
            publish,
            self.echo and bool(publish),
            self.params,
            self.ids,
        )


def parse_flags(query_string: str) -> Flags:
    """Parses ``subscribe-<audience>``, ``publish-<audience>``, ``echo`` and ``ids`` from a query
    string; other ``name=value`` pairs (``last-id=...``) are kept in ``params``."""
    subscribe: set[str] = set()
    publish: set[str] = set()
    params: dict[str, str] = {}
    echo = ids = False
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        flag = name.strip().lower()
        verb, _, audience = flag.partition("-")
        if verb in ("subscribe", "publish") and audience in AUDIENCES:
            (subscribe if verb == "subscribe" else publish).add(audience)
        elif flag == "echo":
            echo = True
        elif flag == "ids":
            ids = True
        elif value:
            params[flag] = value
    return Flags(frozenset(subscribe), frozenset(publish), echo, params, ids)


@dataclass(frozen=True)
class Identity:
    """Who is on the socket: the only user, groups and session its audiences may resolve to."""

    username: str | None = None
    groups: tuple[str, ...] = ()
    session_key: str | None = None

    @property
    def is_authenticated(self) -> bool:
        return self.username is not None


def audience_channels(prefix: str, facility: str, audiences: frozenset[str], identity: Identity) -> list[str]:
    """Returns the channels of ``facility`` that ``audiences`` resolve to for ``identity``:
    broadcast always, user only when logged in, a channel per group, session when there is one."""
    channels = []
    for audience in AUDIENCES:
        if audience not in audiences:
            continue
        if audience == "broadcast":
            channels.append(channel_name(prefix, "broadcast", facility))
        elif audience == "user" and identity.username:
            channels.append(channel_name(prefix, "user", facility, identity.username))
        elif audience == "group":
            channels.extend(channel_name(prefix, "group", facility, group) for group in identity.groups)
        elif audience == "session" and identity.session_key:
            channels.append(channel_name(prefix, "session", facility, identity.session_key))
    return channels


GROUPS_CHANGED = "groups-changed"  # control verb; arguments: the usernames whose groups changed


def control_channel(prefix: str) -> str:
    """Returns the channel every hub subscribes to for the library's notices."""
    return f"{prefix}ws4redis:hub"


def control_message(verb: str, arguments: list[str]) -> bytes:
    """Returns a notice for :func:`control_channel`; an argument must not contain a newline."""
    return "\n".join([verb, *arguments]).encode("utf-8")


def parse_control(data: bytes) -> tuple[str, list[str]]:
    """Returns (verb, arguments) of a notice made by :func:`control_message`."""
    verb, *arguments = data.decode("utf-8", "replace").split("\n")
    return verb, arguments
