"""Group changes reach the next handshake: the identity cache in Redis (identity.py), filled on a
miss, dropped by every signal path with a notice on the hubs' control channel, and the plans the
handshake makes from it. Real Redis, real database; no socket is needed to plan one."""
from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from ws4redis_server import identity
from ws4redis_server.channels import GROUPS_CHANGED, control_channel, parse_control
from ws4redis_server.conf import get_settings
from ws4redis_server.handshake import plan_socket
from ws4redis_server.redis_client import get_redis
from ws4redis_server.server import follows_groups

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def _redis(redis_server: Any) -> None:
    """Every test here uses the library tests' Redis."""


@pytest.fixture
def user() -> User:
    """A user in a group of its own (``user.group``)."""
    made = User.objects.create_user(unique("member"), password="secret")
    made.group = Group.objects.create(name=unique("g"))
    made.groups.add(made.group)
    return made


def login(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def plan(cookie: str | None, query: str = "subscribe-group", path: str = "/ws/f") -> Any:
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80", "wsgi.input": io.BytesIO(b""), "HTTP_UPGRADE": "websocket",
        "HTTP_CONNECTION": "Upgrade", "HTTP_SEC_WEBSOCKET_VERSION": "13", "HTTP_SEC_WEBSOCKET_KEY": KEY,
    }
    if cookie is not None:
        environ["HTTP_COOKIE"] = f"{settings.SESSION_COOKIE_NAME}={cookie}"
    return plan_socket(environ, get_settings())


def key(user: User) -> str:
    return identity.cache_key(get_settings().prefix, user.pk)


def cached(user: User) -> dict[bytes, bytes]:
    return get_redis().hgetall(key(user))


def user_queries(queries: CaptureQueriesContext) -> list[str]:
    """The queries of ``queries`` that read users or groups (not sessions)."""
    return [query["sql"] for query in queries.captured_queries if "auth_" in query["sql"]]


class Notices:
    """The control channel's notices, read from a real Redis subscription."""

    def __init__(self) -> None:
        self.pubsub = get_redis().pubsub()
        self.pubsub.subscribe(control_channel(get_settings().prefix))
        deadline = time.monotonic() + 10
        while self.pubsub.get_message(timeout=0.1) is None:
            assert time.monotonic() < deadline, "no SUBSCRIBE confirmation"

    def next(self, timeout: float = 10) -> tuple[str, list[str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.1)
            if message is not None and message["type"] == "message":
                return parse_control(message["data"])
        raise AssertionError(f"no notice within {timeout}s")

    def none_before_marker(self) -> None:
        """Publishes a marker and checks that it is the next notice (so none came before it)."""
        get_redis().publish(control_channel(get_settings().prefix), "marker")
        assert self.next() == ("marker", [])


@pytest.fixture
def notices() -> Iterator[Notices]:
    listening = Notices()
    yield listening
    listening.pubsub.close()


def test_a_miss_reads_the_database_once_and_fills_the_cache_with_a_ttl(user: User) -> None:
    cookie = login(user)
    get_redis().delete(key(user))
    with CaptureQueriesContext(connection) as queries:
        first = plan(cookie)
    assert first.subscribe == [f"group:{user.group.name}:f"]
    assert any("auth_group" in sql for sql in user_queries(queries))
    entry = cached(user)
    assert entry[b"username"] == user.username.encode() and entry[b"groups"] == f'["{user.group.name}"]'.encode()
    assert 0 < get_redis().ttl(key(user)) <= 300  # WS4REDIS_GROUPS_CACHE_SECONDS's default
    with CaptureQueriesContext(connection) as queries:
        second = plan(cookie)
    assert second.subscribe == first.subscribe and second.identity.username == user.username
    assert user_queries(queries) == []  # the hit: no user or group query, only the session's


def test_login_fills_the_cache(user: User) -> None:
    get_redis().delete(key(user))
    login(user)
    assert cached(user)[b"groups"] == f'["{user.group.name}"]'.encode()


@pytest.mark.parametrize("seconds", [42, 0])
def test_the_ttl_is_the_setting(user: User, seconds: int) -> None:
    cookie = login(user)
    get_redis().delete(key(user))
    with override_settings(WS4REDIS_GROUPS_CACHE_SECONDS=seconds):
        assert plan(cookie).subscribe == [f"group:{user.group.name}:f"]
        if seconds:
            assert 0 < get_redis().ttl(key(user)) <= seconds
        else:  # no cache: every handshake reads the database
            assert get_redis().exists(key(user)) == 0
            with CaptureQueriesContext(connection) as queries:
                plan(cookie)
            assert user_queries(queries)


def test_a_bad_setting_is_refused() -> None:
    from django.core.exceptions import ImproperlyConfigured

    with override_settings(WS4REDIS_GROUPS_CACHE_SECONDS=-1), \
            pytest.raises(ImproperlyConfigured, match="WS4REDIS_GROUPS_CACHE_SECONDS"):
        get_settings()


def _other_group() -> Group:
    return Group.objects.create(name=unique("other"))


CHANGES: dict[str, Callable[[User], None]] = {
    "user.groups.add": lambda user: user.groups.add(_other_group()),
    "user.groups.remove": lambda user: user.groups.remove(user.group),
    "user.groups.clear": lambda user: user.groups.clear(),
    "user.groups.set": lambda user: user.groups.set([_other_group()]),
    "group.user_set.add": lambda user: _other_group().user_set.add(user),
    "group.user_set.remove": lambda user: user.group.user_set.remove(user),
    "group.user_set.clear": lambda user: user.group.user_set.clear(),
    "group renamed": lambda user: (setattr(user.group, "name", unique("renamed")), user.group.save()),
    "group deleted": lambda user: user.group.delete(),
    "group deleted by a queryset": lambda user: Group.objects.filter(pk=user.group.pk).delete(),
}


@pytest.mark.parametrize("change", CHANGES)
def test_every_change_drops_the_cache_and_tells_the_hubs(user: User, notices: Notices, change: str) -> None:
    cookie = login(user)
    assert cached(user)[b"groups"]
    CHANGES[change](user)
    assert notices.next() == (GROUPS_CHANGED, [user.username])
    assert b"groups" not in cached(user) and int(cached(user)[b"generation"]) >= 1
    groups = sorted(User.objects.get(pk=user.pk).groups.values_list("name", flat=True))
    assert plan(cookie).subscribe == [f"group:{name}:f" for name in groups]
    assert cached(user)[b"groups"]  # filled again by that handshake


def test_deleting_a_user_tells_the_hubs(user: User, notices: Notices) -> None:
    login(user)
    username = user.username
    user.delete()
    assert notices.next() == (GROUPS_CHANGED, [username])


def test_a_group_saved_unchanged_or_an_add_of_a_member_sends_no_notice(user: User, notices: Notices) -> None:
    login(user)
    user.group.save()
    user.groups.add(user.group)  # already a member: nothing added
    notices.none_before_marker()
    assert cached(user)[b"groups"]


def test_a_new_password_drops_the_cache_and_old_sessions_are_anonymous(user: User) -> None:
    old_cookie = login(user)
    assert plan(old_cookie).identity.username == user.username
    user.set_password("another secret")
    user.save()
    assert b"groups" not in cached(user)
    new_cookie = login(user)
    assert plan(new_cookie).identity.username == user.username  # fills the cache with the new hash
    anonymous = plan(old_cookie, "subscribe-group&subscribe-user")  # a hit would have let it in
    assert (anonymous.identity.username, anonymous.subscribe) == (None, [])


def test_plans_follow_group_changes(user: User) -> None:
    cookie = login(user)
    first = user.group.name
    assert plan(cookie).subscribe == [f"group:{first}:f"]
    second = _other_group()
    user.groups.add(second)
    assert sorted(plan(cookie).subscribe) == sorted([f"group:{first}:f", f"group:{second.name}:f"])
    user.groups.remove(user.group)
    assert plan(cookie).subscribe == [f"group:{second.name}:f"]
    publishing = plan(cookie, "publish-group")
    assert publishing.publish == [f"group:{second.name}:f"]


def test_a_fill_that_read_the_database_before_a_change_is_refused(user: User) -> None:
    """The race the generation closes: a handshake reads the old groups, the change commits and
    drops the entry, then the handshake would write the old groups back."""
    get_redis().delete(key(user))

    def slow_load() -> Any:
        stale = [group.name for group in user.groups.all()]
        identity.groups_changed([(user.pk, user.username)])  # committed meanwhile

        class Groups:
            def values_list(self, *args: Any, **kwargs: Any) -> list[str]:
                return stale

        class StaleUser:
            groups = Groups()

            def get_username(self) -> str:
                return user.username

        return StaleUser()

    username, groups = identity.lookup(user.pk, None, slow_load)
    assert (username, groups) == (user.username, (user.group.name,))  # that handshake: the server closes it
    assert b"groups" not in cached(user)  # but the old groups are not cached


def test_only_pub_sub_sockets_with_group_flags_follow_groups(user: User) -> None:
    cookie = login(user)
    assert follows_groups(plan(cookie, "subscribe-group")) == user.username
    assert follows_groups(plan(cookie, "publish-group&subscribe-broadcast")) == user.username
    assert follows_groups(plan(cookie, "subscribe-broadcast&subscribe-user")) is None
    assert follows_groups(plan(cookie, "subscribe-group", path="/ws/echo/")) is None  # a handler
    assert follows_groups(plan(None, "subscribe-group")) is None  # anonymous
