"""The allowed-channels hook as ws4redis_server calls it at handshake time (the sockets
themselves are tested in test_sockets)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied

from webapp.channel_permissions import allowed_channels
from ws4redis_server import Identity

EVERYTHING = ["subscribe-broadcast", "subscribe-user", "subscribe-group", "subscribe-session", "echo"]


def handshake(facility: str, user=None) -> SimpleNamespace:
    """The attributes ws4redis_server sets on the request before it calls the hook."""
    user = user or AnonymousUser()
    groups = tuple(user.groups.values_list("name", flat=True)) if user.pk else ()
    identity = Identity(user.username or None, groups, "session-key")
    return SimpleNamespace(ws4redis_facility=facility, ws4redis_identity=identity, user=user)


def test_rooms_keep_only_the_broadcast_subscription(make_user, rooms) -> None:
    assert allowed_channels(handshake(f"chat.{rooms.public.slug}"), EVERYTHING) == ["subscribe-broadcast"]
    member = make_user(groups=[rooms.group.name])
    assert allowed_channels(handshake(f"chat.{rooms.restricted.slug}", member), EVERYTHING) == ["subscribe-broadcast"]


@pytest.mark.parametrize("where, who, reason", [
    ("restricted", "outsider", "Only members of the group of room"),
    ("restricted", "anonymous", "Only members of the group of room"),
    ("nowhere", "member", "There is no chat room 'nowhere-at-all'"),
    ("direct", "anonymous", "Log in to receive private messages"),
])
def test_refusals_say_why(make_user, rooms, where: str, who: str, reason: str) -> None:
    facility = {"restricted": f"chat.{rooms.restricted.slug}", "nowhere": "chat.nowhere-at-all",
                "direct": "chat-direct"}[where]
    user = {"outsider": make_user(), "member": make_user(groups=[rooms.group.name]), "anonymous": None}[who]
    with pytest.raises(PermissionDenied, match=reason):
        allowed_channels(handshake(facility, user), ["subscribe-broadcast", "subscribe-user"])


@pytest.mark.parametrize("where", ["room", "direct"])
def test_publishing_on_chat_sockets_is_refused(make_user, rooms, where: str) -> None:
    facility = f"chat.{rooms.public.slug}" if where == "room" else "chat-direct"
    with pytest.raises(PermissionDenied, match="only receive: post messages with POST /chat/"):
        allowed_channels(handshake(facility, make_user()), ["subscribe-broadcast", "publish-broadcast"])


def test_private_messages_only_on_the_user_audience(make_user) -> None:
    assert allowed_channels(handshake("chat-direct", make_user()), EVERYTHING) == ["subscribe-user"]


def test_other_facilities_pass_unchanged(make_user) -> None:
    flags = EVERYTHING + ["publish-broadcast", "publish-user"]
    for facility in ("demo", "chat", "chatter", "chat_general", "echo"):
        assert allowed_channels(handshake(facility, make_user()), list(flags)) == flags
