"""Publishing into Redis from Django (views, admin, signals, workers) and from sockets.

``RedisPublisher``, ``RedisMessage`` and ``SELF`` keep django-websocket-redis's API (0.6.0 and its
master branch), made to work on Python 3 and current Django: every constructor form, including
``RedisPublisher()`` for ``fetch_message`` alone and ``users=True``/``groups=True``/
``sessions=True`` for the request's own user, groups and session; ``publish_message``,
``pipeline_publish_message`` and ``fetch_message`` with ws4redis's arguments. Beyond ws4redis:
``publish_message`` also takes str and bytes, returns how many hub connections received the
message (ws4redis returned None) and can count deliveries; messages get ids and a history.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis

from . import history as history_
from . import wire
from .channels import AUDIENCES, channel_name, check_facility
from .conf import get_settings
from .redis_client import get_redis


class _Self:
    """Placeholder for "the user, groups or session of ``request``"."""

    def __repr__(self) -> str:
        return "SELF"


SELF = _Self()


class RedisMessage(bytes):
    """A message as bytes, as in ws4redis: built from str (UTF-8), bytes or bytearray, or a Redis
    pub/sub reply ``[b'message', channel, data]`` (its data). The heartbeat
    (``WS4REDIS_HEARTBEAT``) as str or bytes gives None, and so does anything else (None, other
    replies, numbers): ``RedisMessage(x)`` is falsy when there is nothing to publish."""

    def __new__(cls, value: Any) -> Any:  # returns None where ws4redis does
        if isinstance(value, list):
            # ws4redis takes a reply's data as it is, without the heartbeat check.
            if len(value) >= 3 and value[0] == b"message":
                data = value[2]
                if isinstance(data, str):
                    data = data.encode("utf-8")
                return super().__new__(cls, data) if isinstance(data, (bytes, bytearray)) else None
            return None
        if isinstance(value, str):
            value = value.encode("utf-8")
        elif not isinstance(value, (bytes, bytearray)):
            return None
        heartbeat = get_settings().heartbeat
        if heartbeat is not None and value == heartbeat.encode("utf-8"):
            return None
        return super().__new__(cls, value)


class MessageTypeError(TypeError, ValueError):
    """Not a message. A TypeError, and a ValueError as ws4redis raised for a non-RedisMessage
    (e.g. the None that ``RedisMessage`` gives for a heartbeat)."""


def as_bytes(message: Any) -> bytes:
    """Returns ``message`` (str, bytes or RedisMessage) as bytes; raises MessageTypeError otherwise."""
    if isinstance(message, str):
        return message.encode("utf-8")
    if isinstance(message, (bytes, bytearray)):
        return bytes(message)
    raise MessageTypeError(f"a message must be str, bytes or RedisMessage, not {type(message).__name__}")


def publish_to(client: redis.Redis, channels: Iterable[str], message: bytes, expire: int = 0, *,
               history: bool = True, receipt: str | None = None, transaction: bool = False,
               text: bool | None = None) -> int:
    """PUBLISHes ``message`` on each channel in one round trip, and stores it as the channel's
    last message for ``expire`` seconds when ``expire`` > 0. Subscribers read exactly
    ``message``; what the hubs need besides goes in a notice just before it (see ``wire``).
    With ``history`` (and ``WS4REDIS_HISTORY_LENGTH`` > 0) the message gets an id and joins each
    channel's history, all in one Lua script, which Redis runs atomically; otherwise one
    pipeline, in MULTI/EXEC with ``transaction`` or when a notice must go with it.
    ``receipt`` asks the hubs to count its deliveries under that id. ``text``: sockets get it as
    a text frame (None: if it is UTF-8, ws4redis's rule). Returns the sum of PUBLISH replies on
    ``channels`` (subscribed hub connections, not sockets); raises redis.RedisError."""
    channels = list(channels)
    if not channels:
        return 0
    settings = get_settings()
    if text is None:
        text = wire.is_text(message)
    if history and settings.history_length > 0:
        return history_.publish(client, settings.prefix, channels, message, length=settings.history_length,
                                seconds=settings.history_seconds, expire=expire, text=text, receipt=receipt)[1]
    if history_.is_cluster(client):  # SPUBLISH, one script per channel (each on its own shard)
        return history_.publish_sharded(client, settings.prefix, channels, message, length=0, seconds=0,
                                        expire=expire, text=text, receipt=receipt, history=False)[1]
    # Without an id, a notice is needed only for a receipt or an opcode the hubs would get wrong
    # (binary, yet UTF-8); MULTI/EXEC keeps it next to its message.
    marker = wire.binary_marker(message, text)
    notice = wire.notice(None, text, receipt) if receipt is not None or marker is not None else None
    counted = []
    with client.pipeline(transaction=transaction or notice is not None) as pipe:
        for channel in channels:
            if notice is not None:
                pipe.publish(wire.notice_channel(settings.prefix, channel), notice)
            counted.append(len(pipe))
            pipe.publish(channel, message)
            if expire > 0:
                pipe.set(channel, message, ex=expire)  # SETEX, as ws4redis
                marker_key = wire.binary_marker_key(settings.prefix, channel)
                if marker is None:
                    pipe.delete(marker_key)
                else:
                    pipe.set(marker_key, marker, ex=expire)
        replies = pipe.execute()
    return sum(replies[i] for i in counted)


def strip_envelopes(data: bytes) -> bytes:
    """Returns ``data`` read from Redis pub/sub without the id and receipt envelopes that
    publishers of version 0.2.0 and earlier put around messages. Messages published since
    travel as they are: nothing to strip."""
    return wire.unwrap_legacy(data)[2]


def _names(values: Any, what: str) -> list[Any]:
    """The members of an audience argument as a list. ``True`` is ws4redis's older spelling of
    ``[SELF]``; None and False are no one (ws4redis's default is an empty tuple)."""
    if values is None or values is False:
        return []
    if values is True:
        return [SELF]
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        # ws4redis meant a bare string as one name, but raised NameError for it on Python 3.
        raise TypeError(f"{what} must be a list (of names, objects or SELF) or True, not {values!r}")
    return list(values)


def _request_identity(request: Any, what: str) -> Any:
    if request is None:
        raise ValueError(f"{what}=[SELF] (or {what}=True) needs request=")
    from .handshake import identify

    return identify(request)


class RedisPublisher:
    """Publishes to the channels of ``facility`` for the given audiences, as ws4redis's
    ``RedisPublisher(**kwargs)``: the channels are worked out here, once.

    ``broadcast``: everyone subscribed to the facility. ``users``: usernames or user objects.
    ``groups``: group names or Group objects. ``sessions``: session keys. In each list, ``SELF``
    stands for the user, groups or session of ``request`` (nothing when its user is anonymous);
    ``users=True``, ``groups=True`` and ``sessions=True`` mean ``[SELF]``, as in ws4redis.
    ``RedisPublisher()`` without a facility publishes nowhere: it is for :meth:`fetch_message`.
    """

    def __init__(self, facility: str | None = None, broadcast: bool = False, users: Any = None, groups: Any = None,
                 sessions: Any = None, request: Any = None) -> None:
        users, groups, sessions = _names(users, "users"), _names(groups, "groups"), _names(sessions, "sessions")
        self.facility = facility
        self.request = request
        self.channels: list[str] = []
        if facility is None:
            if broadcast or users or groups or sessions:
                # ws4redis published on the literal channel "broadcast:{facility}" then.
                raise ValueError("RedisPublisher needs facility= to publish to an audience")
            return
        check_facility(facility)
        prefix = get_settings().prefix
        channels = [channel_name(prefix, "broadcast", facility)] if broadcast else []
        identity = None

        def own(what: str) -> Any:
            nonlocal identity
            if identity is None:
                identity = _request_identity(request, what)
            return identity

        for user in users:
            if user is SELF:
                username = own("users").username
                if username:
                    channels.append(channel_name(prefix, "user", facility, username))
            else:
                name = user.get_username() if hasattr(user, "get_username") else str(user)
                channels.append(channel_name(prefix, "user", facility, name))
        for group in groups:
            if group is SELF:
                for name in own("groups").groups:
                    channels.append(channel_name(prefix, "group", facility, name))
            else:
                channels.append(channel_name(prefix, "group", facility, getattr(group, "name", group)))
        for session in sessions:
            key = own("sessions").session_key if session is SELF else str(session)
            if key:
                channels.append(channel_name(prefix, "session", facility, key))
        self.channels = list(dict.fromkeys(channels))

    @staticmethod
    def get_prefix() -> str:
        """``WS4REDIS_PREFIX`` with its colon (``"p:"``), or ``""``, as ws4redis's RedisStore."""
        return get_settings().prefix

    def publish_message(self, message: Any, expire: int | None = None, count_deliveries: bool = False) -> Any:
        """Publishes ``message`` (str, bytes or RedisMessage) on this publisher's channels and,
        unless ``expire`` is 0, keeps it ``expire`` seconds (default ``WS4REDIS_EXPIRE``) for
        sockets that connect later. Returns the sum of PUBLISH replies, or with
        ``count_deliveries`` the message id for ``receipts.delivery_count``. Raises RedisError,
        and MessageTypeError (a TypeError and a ValueError) for anything else than a message."""
        return self._publish(message, expire, count_deliveries, transaction=False)

    def pipeline_publish_message(self, message: Any, expire: int | None = None, transaction: bool = True,
                                 count_deliveries: bool = False) -> Any:
        """ws4redis's (master branch) pipelined :meth:`publish_message`: every PUBLISH and SETEX
        in one round trip, all or nothing with ``transaction``. Here every publish is one round
        trip already: with message ids one atomic script, without them (``WS4REDIS_HISTORY_LENGTH
        = 0``) one pipeline, in MULTI/EXEC when ``transaction``. Returns as :meth:`publish_message`."""
        return self._publish(message, expire, count_deliveries, transaction=transaction)

    def _publish(self, message: Any, expire: int | None, count_deliveries: bool, transaction: bool) -> Any:
        if expire is None:
            expire = get_settings().expire
        data = as_bytes(message)
        if not count_deliveries:
            return publish_to(get_redis(), self.channels, data, expire, transaction=transaction)
        # Only the live copy is counted: the persisted one and the history keep the plain message.
        message_id = wire.new_receipt_id()
        publish_to(get_redis(), self.channels, data, expire, receipt=message_id, transaction=transaction)
        return message_id

    def fetch_message(self, request: Any, facility: str, audience: str = "any") -> bytes | None:
        """Returns the persisted message of ``facility`` for ``request``'s session, user, groups
        or broadcast (the first found that is not empty, in that order), or of one ``audience``
        (``"session"``, ``"user"``, ``"group"``, ``"broadcast"``); None if none. ``request`` may be
        None (broadcast only) or lack a session (a RequestFactory request with ``.user``)."""
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
        for value in _mget(get_redis(), keys) if keys else ():
            if value:  # ws4redis skips an empty value too
                return value  # bytes: the client does not decode
        return None


def _mget(client: redis.Redis, keys: list[str]) -> list[Any]:
    """MGET, split by slot on a Redis Cluster (one MGET per slot; Redis refuses one across slots)."""
    if history_.is_cluster(client):
        return client.mget_nonatomic(keys)  # type: ignore[attr-defined]
    return client.mget(keys)


def persisted_messages(client: redis.Redis, prefix: str, channels: list[str]) -> list[tuple[bytes, bool]]:
    """Returns the persisted message of each of ``channels`` that has one, with whether it goes
    out as text, in any Redis mode (a Redis Cluster refuses MGET across slots, and redis-py's
    cluster pipeline refuses MGET altogether); raises redis.RedisError."""
    values = _mget(client, channels)
    markers = _mget(client, [wire.binary_marker_key(prefix, channel) for channel in channels])
    return [(value, wire.persisted_is_text(value, marker))
            for value, marker in zip(values, markers, strict=True) if value is not None]


def publish(channel: str, message: Any, expire: int = 0) -> int:
    """Publishes ``message`` (str or bytes) on the Redis ``channel`` as is: no id, no history
    (for a process's own traffic, e.g. a relay's internal channel); raises RedisError."""
    return publish_to(get_redis(), [channel], as_bytes(message), expire, history=False)
