"""Which broadcasts a page shows when it opens: sent, unexpired, addressed to its user."""
from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.test import override_settings
from django.utils import timezone

from webapp.broadcast.models import Audience, Broadcast, Level

pytestmark = pytest.mark.usefixtures("no_live_broadcasts")


def make_broadcast(*, sent_ago: float | None = 0, expires_in: float | None = None, **fields) -> Broadcast:
    now = timezone.now()
    broadcast = Broadcast.objects.create(
        message=fields.pop("message", "hello"),
        sent_at=None if sent_ago is None else now - timedelta(seconds=sent_ago),
        expires_at=None if expires_in is None else now + timedelta(seconds=expires_in),
        **fields,
    )
    return broadcast


def test_live_keeps_sent_unexpired_broadcasts() -> None:
    shown = make_broadcast(expires_in=60)
    fresh = make_broadcast()
    make_broadcast(expires_in=-1)
    make_broadcast(sent_ago=None, expires_in=60)
    assert set(Broadcast.objects.live()) == {shown, fresh}


@override_settings(WS4REDIS_EXPIRE=100)
def test_without_expiry_live_as_long_as_persisted() -> None:
    recent = make_broadcast(sent_ago=90)
    make_broadcast(sent_ago=110)
    # An expiry of its own wins over the persistence window.
    long_lived = make_broadcast(sent_ago=500, expires_in=60)
    assert set(Broadcast.objects.live()) == {recent, long_lived}


def test_visible_to_follows_the_audience(make_user) -> None:
    staff_group = Group.objects.create(name=f"ops-{uuid4().hex[:8]}")
    alice, bob = make_user(groups=[staff_group.name]), make_user()
    everyone = make_broadcast(audience=Audience.EVERYONE)
    to_alice = make_broadcast(audience=Audience.USERS)
    to_alice.users.add(alice)
    to_group = make_broadcast(audience=Audience.GROUPS)
    to_group.groups.add(staff_group)
    # Recipients of another audience do not count.
    stray = make_broadcast(audience=Audience.EVERYONE)
    stray.users.add(bob)
    assert set(Broadcast.objects.visible_to(alice)) == {everyone, to_alice, to_group, stray}
    assert set(Broadcast.objects.visible_to(bob)) == {everyone, stray}
    assert set(Broadcast.objects.visible_to(AnonymousUser())) == {everyone, stray}


def test_visible_to_lists_each_broadcast_once(make_user) -> None:
    groups = [Group.objects.create(name=f"g{i}-{uuid4().hex[:8]}") for i in range(2)]
    member = make_user(groups=[group.name for group in groups])
    both = make_broadcast(audience=Audience.GROUPS)
    both.groups.add(*groups)
    assert list(Broadcast.objects.visible_to(member)) == [both]


def test_payload_has_id_message_level_and_expiry() -> None:
    broadcast = make_broadcast(message="Maintenance at 6", level=Level.WARNING, expires_in=60)
    payload = broadcast.as_payload()
    assert payload["id"] == broadcast.pk
    assert (payload["message"], payload["level"]) == ("Maintenance at 6", "warning")
    assert payload["expires_at"] == broadcast.expires_at.isoformat()
    assert make_broadcast().as_payload()["expires_at"] is None

