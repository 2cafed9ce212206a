"""The admin flow through Django's test client, publishing into the tests' real Redis."""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client, override_settings
from django.utils import timezone

from deploy.stack import free_port
from webapp.broadcast.models import Broadcast
from webapp.broadcast.sending import FACILITY
from ws4redis_server import channel_name, get_redis, get_settings

pytestmark = pytest.mark.usefixtures("no_live_broadcasts")

CHANGELIST_URL = "/admin/broadcast/broadcast/"
ADD_URL = f"{CHANGELIST_URL}add/"


def channel(audience: str, key: str | None = None) -> str:
    return channel_name(get_settings().prefix, audience, FACILITY, key)


@pytest.fixture
def listener() -> Iterator[Any]:
    """A Redis subscriber to every channel of the facility, to see what the admin publishes."""
    pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(f"{get_settings().prefix}*:{FACILITY}")
    pubsub.get_message(timeout=1)  # the psubscribe confirmation
    yield pubsub
    pubsub.close()


def published(pubsub: Any, timeout: float = 5) -> list[tuple[str, dict[str, Any]]]:
    """Returns the (channel, JSON) messages published until none came for ``timeout`` seconds
    (a short wait once the first has come)."""
    found = []
    while (message := pubsub.get_message(timeout=timeout)) is not None:
        # Exactly what was published: ids and receipts travel on companion channels.
        found.append((message["channel"].decode(), json.loads(message["data"])))
        timeout = 0.3
    return found


def kept_copy() -> bytes:
    """The message persisted on the facility's broadcast channel (for sockets that connect later)."""
    kept = get_redis().get(channel("broadcast"))
    assert isinstance(kept, bytes)
    return kept


def post_broadcast(client: Client, **fields: Any) -> Any:
    data = {"message": f"hello {uuid4().hex[:8]}", "level": "info", "audience": "everyone", **fields}
    return client.post(ADD_URL, data, follow=True)


def test_saving_publishes_at_once(admin_client: Client, listener: Any) -> None:
    response = post_broadcast(admin_client, message="Deploy at noon", level="warning")
    assert response.status_code == 200
    broadcast = Broadcast.objects.get()
    assert broadcast.sent_at is not None and broadcast.sender is not None
    assert "Sent “Deploy at noon” to everyone." in [m.message for m in response.context["messages"]]
    [(name, payload)] = published(listener)
    assert name == channel("broadcast")
    assert payload["id"] == broadcast.pk
    assert (payload["message"], payload["level"]) == ("Deploy at noon", "warning")


def test_persisted_until_the_expiry(admin_client: Client, listener: Any) -> None:
    post_broadcast(admin_client, **expiry_fields(timezone.now() + timedelta(minutes=10)))
    assert published(listener)
    ttl = get_redis().ttl(channel("broadcast"))
    assert 590 <= ttl <= 600
    assert json.loads(kept_copy())["id"] == Broadcast.objects.get().pk


def test_without_expiry_persisted_for_ws4redis_expire(admin_client: Client, listener: Any) -> None:
    post_broadcast(admin_client)
    assert published(listener)
    assert get_settings().expire - 5 <= get_redis().ttl(channel("broadcast")) <= get_settings().expire


def test_chosen_users_get_it_on_their_channels_only(admin_client: Client, listener: Any, make_user) -> None:
    alice, bob = make_user(), make_user()
    post_broadcast(admin_client, audience="users", users=[alice.pk, bob.pk])
    names = sorted(name for name, _ in published(listener))
    assert names == sorted([channel("user", alice.username), channel("user", bob.username)])


def test_chosen_groups_get_it_on_their_channels_only(admin_client: Client, listener: Any) -> None:
    group = Group.objects.create(name=f"ops-{uuid4().hex[:8]}")
    post_broadcast(admin_client, audience="groups", groups=[group.pk])
    assert [name for name, _ in published(listener)] == [channel("group", group.name)]


@pytest.mark.parametrize("audience", ["users", "groups"])
def test_a_targeted_audience_needs_recipients(admin_client: Client, listener: Any, audience: str) -> None:
    response = post_broadcast(admin_client, audience=audience)
    assert response.status_code == 200
    assert audience in response.context["adminform"].form.errors
    assert not Broadcast.objects.exists()
    assert published(listener, timeout=0.5) == []


def expiry_fields(when: datetime) -> dict[str, str]:
    """The admin's split date and time inputs for ``when``."""
    return {"expires_at_0": when.strftime("%Y-%m-%d"), "expires_at_1": when.strftime("%H:%M:%S")}


def test_an_expiry_in_the_past_is_refused(admin_client: Client, listener: Any) -> None:
    response = post_broadcast(admin_client, **expiry_fields(timezone.now() - timedelta(minutes=1)))
    assert response.context["adminform"].form.errors["expires_at"] == ["The expiry must be in the future."]
    assert published(listener, timeout=0.5) == []


def test_an_expired_broadcast_can_still_be_corrected(admin_client: Client, listener: Any) -> None:
    post_broadcast(admin_client, message="typo", **expiry_fields(timezone.now() + timedelta(minutes=1)))
    published(listener)
    expired = timezone.now() - timedelta(minutes=1)
    Broadcast.objects.update(expires_at=expired)
    broadcast = Broadcast.objects.get()
    response = admin_client.post(
        f"{CHANGELIST_URL}{broadcast.pk}/change/",
        {"message": "fixed", "level": "info", "audience": "everyone", **expiry_fields(expired)},
    )
    assert response.status_code == 302
    broadcast.refresh_from_db()
    assert broadcast.message == "fixed"


@pytest.mark.parametrize("perms", [(), ("view",), ("change", "view", "delete")])
def test_staff_without_add_permission_cannot_send(make_staff, listener: Any, perms: tuple[str, ...]) -> None:
    client = Client()
    client.force_login(make_staff(*perms))
    response = post_broadcast(client)
    assert response.status_code == 403
    assert not Broadcast.objects.exists()
    assert published(listener, timeout=0.5) == []


def test_users_who_are_not_staff_cannot_send(make_user, listener: Any) -> None:
    user = make_user()
    user.user_permissions.add(Permission.objects.get(content_type__app_label="broadcast", codename="add_broadcast"))
    client = Client()
    client.force_login(user)
    response = client.post(ADD_URL, {"message": "x", "level": "info", "audience": "everyone"})
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert published(listener, timeout=0.5) == []


def test_resend_action_publishes_the_selected_again(admin_client: Client, listener: Any) -> None:
    post_broadcast(admin_client, message="first")
    post_broadcast(admin_client, message="second")
    published(listener)
    first, second = Broadcast.objects.order_by("pk")
    first_sent = first.sent_at
    response = admin_client.post(
        CHANGELIST_URL, {"action": "resend", "_selected_action": [first.pk, second.pk]}, follow=True
    )
    assert [m.message for m in response.context["messages"]] == ["Sent 2 broadcasts."]
    assert sorted(payload["id"] for _, payload in published(listener)) == [first.pk, second.pk]
    first.refresh_from_db()
    assert first.sent_at > first_sent


def test_resend_skips_expired_broadcasts(admin_client: Client, listener: Any) -> None:
    post_broadcast(admin_client, message="old news")
    published(listener)
    Broadcast.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = admin_client.post(
        CHANGELIST_URL, {"action": "resend", "_selected_action": [Broadcast.objects.get().pk]}, follow=True
    )
    assert [m.message for m in response.context["messages"]] == ["Not sent: “old news” has expired."]
    assert published(listener, timeout=0.5) == []


def test_resend_needs_the_add_permission(make_staff, admin_client: Client, listener: Any) -> None:
    post_broadcast(admin_client)
    published(listener)
    client = Client()
    client.force_login(make_staff("change", "view", "delete"))
    changelist = client.get(CHANGELIST_URL)
    actions = dict(changelist.context["action_form"].fields["action"].choices)
    assert "delete_selected" in actions and "resend" not in actions
    response = client.post(
        CHANGELIST_URL, {"action": "resend", "_selected_action": [Broadcast.objects.get().pk]}, follow=True
    )
    assert response.status_code == 200
    assert published(listener, timeout=0.5) == []


def test_editing_a_sent_broadcast_does_not_resend(admin_client: Client, listener: Any) -> None:
    post_broadcast(admin_client, message="typo")
    published(listener)
    broadcast = Broadcast.objects.get()
    response = admin_client.post(
        f"{CHANGELIST_URL}{broadcast.pk}/change/",
        {"message": "fixed", "level": "info", "audience": "everyone"}, follow=True,
    )
    assert any("Re-send" in m.message for m in response.context["messages"])
    assert published(listener, timeout=0.5) == []


def test_unreachable_redis_is_reported_and_nothing_marked_sent(admin_client: Client) -> None:
    # Only the publisher's Redis is away: sessions (the cache) still work, as for a wrong setting.
    with override_settings(WS4REDIS_CONNECTION={"url": f"redis://127.0.0.1:{free_port()}/0"}):
        response = post_broadcast(admin_client, message="nobody hears")
    [message] = [m for m in response.context["messages"] if m.level_tag == "error"]
    assert "Redis is unreachable" in message.message
    assert Broadcast.objects.get().sent_at is None


def test_changelist_shows_when_sent(admin_client: Client, listener: Any) -> None:
    post_broadcast(admin_client, message="status page")
    published(listener)
    response = admin_client.get(CHANGELIST_URL)
    sent_at = Broadcast.objects.get().sent_at
    assert "status page" in response.content.decode()
    assert response.context["cl"].result_count == 1
    assert sent_at is not None


def test_deleting_takes_it_off_open_pages_and_off_the_kept_copy(admin_client: Client, listener: Any) -> None:
    post_broadcast(admin_client, message="wrong room number")
    published(listener)
    broadcast = Broadcast.objects.get()
    response = admin_client.post(f"{CHANGELIST_URL}{broadcast.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.status_code == 200 and not Broadcast.objects.exists()
    assert published(listener) == [(channel("broadcast"), {"id": broadcast.pk, "withdrawn": True})]
    assert get_redis().get(channel("broadcast")) is None


def test_deleting_an_older_one_keeps_the_last_copy(admin_client: Client, listener: Any) -> None:
    post_broadcast(admin_client, message="older")
    post_broadcast(admin_client, message="newer")
    published(listener)
    older, newer = Broadcast.objects.order_by("pk")
    admin_client.post(CHANGELIST_URL, {"action": "delete_selected", "_selected_action": [older.pk], "post": "yes"})
    assert [payload for _, payload in published(listener)] == [{"id": older.pk, "withdrawn": True}]
    assert json.loads(kept_copy())["id"] == newer.pk
