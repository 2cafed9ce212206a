"""Who a socket's user is at the handshake, and group changes that reach the next handshake.

The username and group names of a user are cached in Redis, in the hash
``[prefix:]ws4redis:groups:<user pk>`` (fields ``username``, ``groups``, ``auth``, ``generation``),
for ``WS4REDIS_GROUPS_CACHE_SECONDS`` (300; 0 reads the database at every handshake). A handshake
reads it with one HMGET; only a miss queries the database, and fills the entry again.

Why Redis and not the session (where they were cached at login): a session holds a copy per
login that nothing can reach when an administrator removes the user from a group, so the user
kept the group's channels until they logged in again. One entry per user can be dropped from
anywhere. The receivers below (connected by the app's ``ready()``) drop it once a change is
committed, and publish ``groups-changed`` with the usernames on the hubs' control channel, so
every WebSocket process closes that user's open sockets with group flags (close code 4001;
clients reconnect and get a new plan). They catch ``user.groups.add/remove/clear/set``,
``group.user_set.add/remove/clear``, renaming or deleting a Group (also through a QuerySet's
``delete()``) and deleting a user. Saving a user (a new password or username) drops the entry
without closing sockets.

Not caught: SQL that sends no signals (``Group.objects.update(name=...)``, the through model's
``bulk_create`` or ``QuerySet.delete()``, raw SQL, ``loaddata``). Those changes reach handshakes
when the entry expires or at the user's next login (which refreshes it); sockets already open keep
their channels until they reconnect. A notice published while a WebSocket process's hub is
disconnected from Redis is lost for that process, and one that cannot be published (Redis down
when the change commits) is logged.

Two races are closed: a handshake that read the database before a change and writes the entry
after it would cache the old groups; every drop increments the entry's ``generation``, and a fill
writes only if the generation is still the one it read before the database (a Lua script). A
handshake planned before a change and registered after the notice is closed by the server
(server.py remembers the notices that arrive during handshakes).

The ``auth`` field is the user's session hash (``get_session_auth_hash()``): a hit counts only for
a session that carries the same, so a session that Django itself would refuse (the password has
changed since) is checked against the database, as ``django.contrib.auth.get_user`` does.
"""
from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any, cast

import redis
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.utils.crypto import constant_time_compare

from .channels import GROUPS_CHANGED, control_channel, control_message
from .conf import get_settings
from .history import is_cluster
from .publisher import publish_to
from .redis_client import get_redis

logger = logging.getLogger("ws4redis_server.identity")

GENERATION_SECONDS = 3600  # how long a dropped entry remembers its generation
BATCH = 1000  # users per notice

# Writes the entry unless it was dropped since the handshake read its generation (ARGV[1]).
_FILL = """
if (redis.call('HGET', KEYS[1], 'generation') or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'username', ARGV[2], 'groups', ARGV[3], 'auth', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def cache_key(prefix: str, user_id: Any) -> str:
    """Returns the Redis key of the cached identity of the user with pk ``user_id``."""
    return f"{prefix}ws4redis:groups:{user_id}"


@functools.lru_cache(maxsize=8)
def _fill_script(client: redis.Redis) -> Any:
    return client.register_script(_FILL)


def group_names(user: Any) -> tuple[str, ...]:
    """Returns the names of ``user``'s groups (a query), or () for a user model without groups."""
    manager = getattr(user, "groups", None)
    return tuple(manager.values_list("name", flat=True)) if manager is not None else ()


def _auth_hash(user: Any) -> str:
    method = getattr(user, "get_session_auth_hash", None)
    return method() if method is not None else ""


def lookup(user_id: Any, session_hash: str | None, load: Callable[[], Any]) -> tuple[str, tuple[str, ...]] | None:
    """Returns (username, group names) of the user with pk ``user_id``: from the cache if it has
    them for ``session_hash`` (None: any), otherwise from ``load()`` (the user, or None when there is
    no such user or the session is not valid: then None) and cached. Redis errors fall back to
    ``load()``."""
    settings = get_settings()
    seconds = settings.groups_cache_seconds
    key = cache_key(settings.prefix, user_id)
    generation: Any = b""
    if seconds:
        try:
            username, groups, auth, generation = cast(
                "list[Any]", get_redis().hmget(key, "username", "groups", "auth", "generation"))
        except redis.RedisError as exc:
            logger.debug("identity cache unavailable: %s", exc)
            seconds = 0
        else:
            if groups is not None and (session_hash is None or constant_time_compare(auth, session_hash)):
                return username.decode("utf-8"), tuple(json.loads(groups))
    user = load()
    if user is None:
        return None
    username, names = user.get_username(), group_names(user)
    if seconds:
        _store(key, generation or b"", username, names, _auth_hash(user), seconds)
    return username, names


def _store(key: str, generation: bytes, username: str, groups: tuple[str, ...], auth: str, seconds: int) -> None:
    client = get_redis()
    try:
        _fill_script(client)(keys=[key], args=[generation, username, json.dumps(groups), auth, seconds], client=client)
    except redis.RedisError as exc:
        logger.debug("identity cache not filled: %s", exc)


def remember(user: Any) -> None:
    """Caches ``user``'s identity now (at login, so the first handshake needs no query)."""
    settings = get_settings()
    if not settings.groups_cache_seconds or user.pk is None:
        return
    key = cache_key(settings.prefix, user.pk)
    try:
        generation = cast("bytes | None", get_redis().hget(key, "generation"))
    except redis.RedisError as exc:
        logger.debug("identity cache unavailable: %s", exc)
        return
    _store(key, generation or b"", user.get_username(), group_names(user), _auth_hash(user),
           settings.groups_cache_seconds)


def groups_changed(users: Iterable[tuple[Any, str]]) -> None:
    """Drops the cached identity of ``users`` (pairs of pk and username) and tells every hub, so
    that their sockets with group flags are closed. Call it once the change is committed."""
    _drop(list(users), notify=True)


def forget(user_ids: Iterable[Any]) -> None:
    """Drops the cached identity of the users with these pks, without closing sockets."""
    _drop([(user_id, "") for user_id in user_ids], notify=False)


def _drop(users: list[tuple[Any, str]], notify: bool) -> None:
    settings = get_settings()
    client = get_redis()
    # On a Redis Cluster the users' keys live on several shards (no MULTI across them) and the
    # hubs read the control channel with SSUBSCRIBE: the notice follows the pipeline, SPUBLISHed.
    cluster = is_cluster(client)
    try:
        for start in range(0, len(users), BATCH):
            batch = users[start:start + BATCH]
            notice = control_message(GROUPS_CHANGED, [username for _, username in batch])
            with client.pipeline(transaction=not cluster) as pipe:
                for user_id, _ in batch:
                    key = cache_key(settings.prefix, user_id)
                    pipe.hincrby(key, "generation", 1)  # refuses the fills of handshakes under way
                    pipe.hdel(key, "username", "groups", "auth")
                    pipe.expire(key, GENERATION_SECONDS)
                if notify and not cluster:
                    pipe.publish(control_channel(settings.prefix), notice)
                pipe.execute()
            if notify and cluster:
                publish_to(client, [control_channel(settings.prefix)], notice, history=False)
    except redis.RedisError as exc:
        logger.warning("could not drop the cached identity of %d users (handshakes may see the old "
                       "one for up to %ds, open sockets keep their channels): %s",
                       len(users), settings.groups_cache_seconds, exc)


# -- signal receivers ------------------------------------------------------------------------------

def _users(**lookups: Any) -> list[tuple[Any, str]]:
    model = get_user_model()
    return list(model._default_manager.filter(**lookups).values_list("pk", model.USERNAME_FIELD))


def _after_commit(users: list[tuple[Any, str]], using: str | None) -> None:
    if users:
        transaction.on_commit(lambda: groups_changed(users), using=using)


def _membership_changed(sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[Any] | None,
                        using: str | None = None, **kwargs: Any) -> None:
    """``user.groups.add/remove/clear/set`` (instance: the user) and ``group.user_set...``
    (reverse; instance: the group)."""
    if reverse:
        if action == "pre_clear":  # the members are gone by post_clear
            instance._ws4redis_members = _users(groups=instance)
        elif action == "post_clear":
            _after_commit(instance.__dict__.pop("_ws4redis_members", []), using)
        elif action in ("post_add", "post_remove") and pk_set:
            _after_commit(_users(pk__in=pk_set), using)
    elif action == "post_clear" or (action in ("post_add", "post_remove") and pk_set):
        _after_commit([(instance.pk, instance.get_username())], using)


def _group_saving(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if instance.pk is not None and not raw:
        instance._ws4redis_old_name = sender._default_manager.filter(pk=instance.pk).values_list(
            "name", flat=True).first()


def _group_saved(sender: Any, instance: Any, created: bool, using: str | None = None, **kwargs: Any) -> None:
    old_name = instance.__dict__.pop("_ws4redis_old_name", None)
    if not created and old_name is not None and old_name != instance.name:  # renamed
        _after_commit(_users(groups=instance), using)


def _group_deleting(sender: Any, instance: Any, using: str | None = None, **kwargs: Any) -> None:
    # Deletions run in a transaction: the notice goes out after it commits, members read now.
    _after_commit(_users(groups=instance), using)


def _user_saved(sender: Any, instance: Any, created: bool, update_fields: Any = None, using: str | None = None,
                **kwargs: Any) -> None:
    # A new password (its session hash) or username must not be served from the cache; a login's
    # update of last_login changes neither.
    if not created and not (update_fields is not None and set(update_fields) <= {"last_login"}):
        user_id = instance.pk
        transaction.on_commit(lambda: forget([user_id]), using=using)


def _user_deleted(sender: Any, instance: Any, using: str | None = None, **kwargs: Any) -> None:
    _after_commit([(instance.pk, instance.get_username())], using)


def connect_signals() -> None:
    """Connects the receivers that keep the cache right (the app's ``ready()`` calls it)."""
    user_model = get_user_model()
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="ws4redis_user_saved")
    post_delete.connect(_user_deleted, sender=user_model, dispatch_uid="ws4redis_user_deleted")
    groups = getattr(user_model, "groups", None)
    if groups is None:  # a user model without PermissionsMixin: no groups to follow
        return
    group_model = groups.field.related_model
    m2m_changed.connect(_membership_changed, sender=groups.through, dispatch_uid="ws4redis_membership_changed")
    pre_save.connect(_group_saving, sender=group_model, dispatch_uid="ws4redis_group_saving")
    post_save.connect(_group_saved, sender=group_model, dispatch_uid="ws4redis_group_saved")
    pre_delete.connect(_group_deleting, sender=group_model, dispatch_uid="ws4redis_group_deleting")
