"""Rooms, messages and history pages, against the test database."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.http import QueryDict

from webapp.chat import conf, history
from webapp.chat.models import Message, PrivateMessage, Room

from .conftest import unique


@pytest.mark.parametrize("slug", ["general", "team-news", "a", "r2d2", "x" * 50])
def test_valid_room_names(slug: str) -> None:
    Room(slug=slug).clean_fields()


@pytest.mark.parametrize("slug", ["General", "team news", "-news", "news-", "team--news", "news_", "direct", "new",
                                  "", "x" * 51, "café"])
def test_invalid_room_names_are_refused(slug: str) -> None:
    with pytest.raises(ValidationError) as error:
        Room(slug=slug).full_clean()
    assert "slug" in error.value.message_dict


def test_room_names_are_unique() -> None:
    room = Room.objects.create(slug=unique("general"))
    with pytest.raises(ValidationError, match="already exists"):
        Room(slug=room.slug).full_clean()


def test_who_may_read_and_post(make_user, rooms) -> None:
    member, outsider = make_user(groups=[rooms.group.name]), make_user()
    anonymous = AnonymousUser()

    assert rooms.public.can_read(anonymous) and not rooms.public.can_post(anonymous)
    assert rooms.public.can_read(outsider) and rooms.public.can_post(outsider)
    assert rooms.restricted.can_read(member) and rooms.restricted.can_post(member)
    assert not rooms.restricted.can_read(outsider) and not rooms.restricted.can_post(outsider)
    assert not rooms.restricted.can_read(anonymous)
    ours = Room.objects.filter(pk__in=[rooms.public.pk, rooms.restricted.pk])
    assert list(ours.visible_to(anonymous)) == [rooms.public]
    assert list(ours.visible_to(outsider)) == [rooms.public]
    assert set(ours.visible_to(member)) == {rooms.public, rooms.restricted}


def test_private_messages_between_two_users_only(make_user) -> None:
    alice, bob, carol = make_user(), make_user(), make_user()
    to_bob = PrivateMessage.objects.create(sender=alice, recipient=bob, text="hi bob")
    to_alice = PrivateMessage.objects.create(sender=bob, recipient=alice, text="hi alice")
    PrivateMessage.objects.create(sender=carol, recipient=alice, text="hi from carol")

    assert list(PrivateMessage.objects.between(alice, bob)) == [to_bob, to_alice]
    assert list(PrivateMessage.objects.between(bob, alice)) == [to_bob, to_alice]
    assert not PrivateMessage.objects.between(bob, carol).exists()
    assert to_bob.as_event() == {
        "type": "private", "id": to_bob.id, "author": alice.username, "recipient": bob.username,
        "text": "hi bob", "created": to_bob.created_at.isoformat(),
    }


def test_history_pages(make_user, rooms) -> None:
    author = make_user()
    ids = [Message.objects.create(room=rooms.public, author=author, text=f"m{n}").id for n in range(120)]
    Message.objects.create(room=rooms.restricted, author=author, text="elsewhere")
    messages = rooms.public.messages.all()

    latest = history.latest(messages)
    assert [m.id for m in latest.messages] == ids[70:] and latest.more
    page = history.older(messages, ids[70])
    assert [m.id for m in page.messages] == ids[20:70] and page.more
    page = history.older(messages, ids[20])
    assert [m.id for m in page.messages] == ids[:20] and not page.more
    page = history.newer(messages, ids[10])
    assert [m.id for m in page.messages] == ids[11:61] and page.more
    page = history.newer(messages, ids[100])
    assert [m.id for m in page.messages] == ids[101:] and not page.more
    assert [m.text for m in history.latest(rooms.restricted.messages.all()).messages] == ["elsewhere"]


@pytest.mark.parametrize("query", ["before=x", "after=-1", "before=1&after=2", "after=1.5", "before=" + "9" * 19,
                                   "after=\u00b2"])
def test_history_cursor_must_be_a_message_id(query: str) -> None:
    with pytest.raises(history.BadCursor):
        history.page_for(Message.objects.all(), QueryDict(query))


@pytest.mark.parametrize("name, value, read", [
    ("CHAT_RATE_LIMIT", (0, 10), conf.rate_limit), ("CHAT_RATE_LIMIT", (5, 0), conf.rate_limit),
    ("CHAT_RATE_LIMIT", 5, conf.rate_limit), ("CHAT_RATE_LIMIT", ("5", 1), conf.rate_limit),
    ("CHAT_MAX_MESSAGE_LENGTH", 0, conf.max_message_length), ("CHAT_HISTORY_PAGE", "50", conf.history_page),
    ("CHAT_PRESENCE_TTL", True, conf.presence_ttl),
])
def test_bad_chat_settings_are_improperly_configured(chat_settings, name: str, value: object, read) -> None:
    chat_settings(**{name: value})
    with pytest.raises(ImproperlyConfigured, match=name):
        read()
