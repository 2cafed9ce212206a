"""Fixtures of the broadcast tests: staff with or without the right to send, an admin client, and
a clean slate (no live broadcast, nothing persisted on the facility) for tests that count what a
page or a socket receives."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from webapp.broadcast.models import Broadcast
from webapp.broadcast.sending import FACILITY
from ws4redis_server import get_redis, get_settings


@pytest.fixture
def make_staff(make_user: Callable[..., Any]) -> Callable[..., Any]:
    """Returns a factory of staff users holding the given broadcast permissions
    ("add", "change", "view", "delete")."""

    def make(*perms: str, **fields: Any) -> Any:
        user = make_user(is_staff=True, **fields)
        codenames = [f"{perm}_broadcast" for perm in perms]
        permissions = Permission.objects.filter(content_type__app_label="broadcast", codename__in=codenames)
        user.user_permissions.add(*permissions)
        return user

    return make


@pytest.fixture
def admin_client(make_staff: Callable[..., Any]) -> Client:
    """A Django test client logged in as staff with every broadcast permission."""
    client = Client()
    client.force_login(make_staff("add", "change", "view", "delete"))
    return client


@pytest.fixture
def no_live_broadcasts() -> Iterator[None]:
    """Starts the test with no broadcast in the database nor persisted in Redis, and leaves none."""

    def clear() -> None:
        Broadcast.objects.all().delete()
        keys = get_redis().keys(f"{get_settings().prefix}*:{FACILITY}")
        if keys:
            get_redis().delete(*keys)

    clear()
    yield
    clear()


@pytest.fixture
def send_from_admin(admin_client: Client) -> Callable[..., Broadcast]:
    """Returns a function that adds a broadcast through the admin (which sends it at once) and
    returns it; fields default to an info broadcast to everyone with a unique message."""

    def send(**fields: Any) -> Broadcast:
        message = fields.pop("message", f"note {uuid4().hex[:8]}")
        data = {"message": message, "level": "info", "audience": "everyone", **fields}
        response = admin_client.post("/admin/broadcast/broadcast/add/", data)
        assert response.status_code == 302, response.content.decode()[:2000]
        return Broadcast.objects.get(message=message)

    return send
