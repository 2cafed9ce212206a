"""Publishing into Redis from Django (views, admin, signals, workers) and from sockets.

``RedisPublisher`` and ``RedisMessage`` keep django-websocket-redis's API, made to work on
Python 3 and Django 5.2: ``publish_message`` takes str, bytes or RedisMessage.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis

from . import history as history_
from . import receipts
from .channels import AUDIENCES, channel_name, check_facility
from .conf import get_settings
from .redis_client import get_redis


class _Self:
    """Placeholder for "the user, groups or session of ``request``"."""

    def __repr__(self) -> str:
        return "SELF"


SELF = _Self()


class RedisMessage(bytes):
    """A message as bytes. Built from str (UTF-8), bytes, or a Redis pub/sub reply
    ``[b'message', channel, data]``; the heartbeat string and other replies give None."""

    def __new__(cls, value: Any) -> Any:  # returns None for heartbeats, as ws4redis does
        if isinstance(value, list):
            if len(value) >= 3 and value[0] == b"message":
                value = value[2]
            else:
                return None
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"RedisMessage takes str or bytes, not {type(value).__name__}")
        heartbeat = get_settings().heartbeat
        if heartbeat is not None and value == heartbeat.encode("utf-8"):
            return None
        return super().__new__(cls, value)


def as_bytes(message: Any) -> bytes:
    """Returns ``message`` (str, bytes or RedisMessage) as bytes; raises TypeError otherwise."""
    if isinstance(message, str):
        return message.encode("utf-8")
    if isinstance(message, (bytes, bytearray)):
        return bytes(message)
    raise TypeError(f"a message must be str or bytes, not {type(message).__name__}")


def publish_to(client: redis.Redis, channels: Iterable[str], message: bytes, expire: int = 0, *,
               history: bool = True, receipt: str | None = None) -> int:
    """PUBLISHes ``message`` on each channel in one round trip, and stores it as the channel's
    last message for ``expire`` seconds when ``expire`` > 0. With ``history`` (and
    ``WS4REDIS_HISTORY_LENGTH`` > 0) the message gets an id and joins each channel's history.
    ``receipt`` asks the hubs to count its deliveries under that id. Returns the sum of PUBLISH
    replies (subscribed hub connections, not sockets); raises redis.RedisError."""
    channels = list(channels)
    if not channels:
        return 0
    settings = get_settings()
    wire = message if receipt is None else receipts.wrap(receipt, message)
    if history and settings.history_length > 0:
        return history_.publish(client, settings.prefix, channels, message, length=settings.history_length,
                                seconds=settings.history_seconds, expire=expire, wire=wire)[1]
    with client.pipeline(transaction=False) as pipe:
        for channel in channels:
            pipe.publish(channel, wire)
            if expire > 0:
                pipe.set(channel, message, ex=expire)  # SETEX, as ws4redis
        replies = pipe.execute()
    return sum(replies[:: 2 if expire > 0 else 1])


def strip_envelopes(data: bytes) -> bytes:
    """Returns a message read straight from Redis pub/sub as it was published: without the id
    and delivery-receipt envelopes that the sidecar's hubs remove before sockets get it."""
    return receipts.unwrap(history_.unwrap(data)[1])[1]


def _names(values: Any, what: str) -> list[Any]:
    if values is None or values is False:
        return []
    if isinstance(values, (str, bytes)) or values is True or not hasattr(values, "__iter__"):
        raise TypeError(f"{what} must be a list (of names, objects or SELF), not {values!r}")
    return list(values)


def _request_identity(request: Any, what: str) -> Any:
    if request is None:
        raise ValueError(f"{what}=[SELF] needs request=")
    from .handshake import identify

    return identify(request)


class RedisPublisher:
    """Publishes to the channels of ``facility`` for the given audiences.

    ``broadcast``: everyone subscribed to the facility. ``users``: usernames or user objects.
    ``groups``: group names or Group objects. ``sessions``: session keys. In each list, ``SELF``
    stands for the user, groups or session of ``request``.
    """

    def __init__(self, facility: str, broadcast: bool = False, users: Any = None, groups: Any = None,
                 sessions: Any = None, request: Any = None) -> None:
        check_facility(facility)
        self.facility = facility
        self.request = request
        prefix = get_settings().prefix
        channels = [channel_name(prefix, "broadcast", facility)] if broadcast else []
        for user in _names(users, "users"):
            if user is SELF:
                username = _request_identity(request, "users").username
                if username:
                    channels.append(channel_name(prefix, "user", facility, username))
            else:
                name = user.get_username() if hasattr(user, "get_username") else str(user)
                channels.append(channel_name(prefix, "user", facility, name))
        for group in _names(groups, "groups"):
            if group is SELF:
                for name in _request_identity(request, "groups").groups:
                    channels.append(channel_name(prefix, "group", facility, name))
            else:
                channels.append(channel_name(prefix, "group", facility, getattr(group, "name", group)))
        for session in _names(sessions, "sessions"):
            key = _request_identity(request, "sessions").session_key if session is SELF else str(session)
            if key:
                channels.append(channel_name(prefix, "session", facility, key))
        self.channels = list(dict.fromkeys(channels))

    def publish_message(self, message: Any, expire: int | None = None, count_deliveries: bool = False) -> Any:
        """Publishes ``message`` (str, bytes or RedisMessage) on this publisher's channels and,
        unless ``expire`` is 0, keeps it ``expire`` seconds (default ``WS4REDIS_EXPIRE``) for
        sockets that connect later. Returns the sum of PUBLISH replies, or with
        ``count_deliveries`` the message id for ``receipts.delivery_count``. Raises RedisError."""
        if expire is None:
            expire = get_settings().expire
        data = as_bytes(message)
        if not count_deliveries:
            return publish_to(get_redis(), self.channels, data, expire)
        # Only the live copy is counted: the persisted one and the history keep the plain message.
        message_id = receipts.new_id()
        publish_to(get_redis(), self.channels, data, expire, receipt=message_id)
        return message_id

    def fetch_message(self, request: Any, facility: str, audience: str = "any") -> bytes | None:
        """Returns the persisted message of ``facility`` for ``request``'s session, user, groups
        or broadcast (the first found, in that order), or of one ``audience``; None if none."""
        check_facility(facility)
        if audience != "any" and audience not in AUDIENCES:
            raise ValueError(f"audience must be 'any' or one of {AUDIENCES}, not {audience!r}")
        prefix = get_settings().prefix
        identity = _request_identity(request, "fetch_message") if request is not None else None
        keys: list[str] = []
        for candidate in ("session", "user", "group", "broadcast"):
            if audience not in ("any", candidate):
                continue
            if candidate == "broadcast":
                keys.append(channel_name(prefix, "broadcast", facility))
            elif identity is None:
                continue
            elif candidate == "session" and identity.session_key:
                keys.append(channel_name(prefix, "session", facility, identity.session_key))
            elif candidate == "user" and identity.username:
                keys.append(channel_name(prefix, "user", facility, identity.username))
            elif candidate == "group":
                keys.extend(channel_name(prefix, "group", facility, group) for group in identity.groups)
        for value in get_redis().mget(keys) if keys else ():
            if value is not None:
                return value  # type: ignore[return-value]  # bytes: the client does not decode
        return None


def publish(channel: str, message: Any, expire: int = 0) -> int:
    """Publishes ``message`` (str or bytes) on the Redis ``channel`` as is: no id, no history
    (for a process's own traffic, e.g. a relay's internal channel); raises RedisError."""
    return publish_to(get_redis(), [channel], as_bytes(message), expire, history=False)
