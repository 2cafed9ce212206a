"""The chat's pages and JSON endpoints through Django's test client, with a real redis-server."""
from __future__ import annotations

import pytest
from django.test import Client

from webapp.chat.facilities import DIRECT, room_channel
from webapp.chat.models import Message, PrivateMessage, Room
from webapp.chat.presence import Presence
from ws4redis_server import channel_name, get_settings

from .conftest import unique

XSS = "<img src=x onerror=alert(1)>"
HTML = {"HTTP_ACCEPT": "text/html,application/xhtml+xml"}


@pytest.fixture(autouse=True)
def _generous_rate_limit(redis_server, chat_settings) -> None:
    chat_settings(CHAT_RATE_LIMIT=(1000, 1))  # the rate-limit test sets its own


def url(room: Room, what: str = "") -> str:
    return f"/chat/{room.slug}/{what}"


# -- rooms ---------------------------------------------------------------------------------


def test_anonymous_visitors_see_public_rooms_only(rooms) -> None:
    page = Client().get("/chat/").content.decode()
    assert f"#{rooms.public.slug}" in page and f"#{rooms.restricted.slug}" not in page
    assert "Create a room" not in page and "/accounts/login/" in page


def test_members_see_their_groups_rooms(make_user, logged_in, rooms) -> None:
    page = logged_in(make_user(groups=[rooms.group.name])).get("/chat/").content.decode()
    assert f"#{rooms.public.slug}" in page and f"#{rooms.restricted.slug}" in page
    assert f"members of {rooms.group.name}" in page and "Create a room" in page
    assert f"#{rooms.restricted.slug}" not in logged_in(make_user()).get("/chat/").content.decode()


def test_logged_in_users_create_rooms(make_user, logged_in, rooms) -> None:
    user = make_user(groups=[rooms.group.name])
    slug = unique("news")
    response = logged_in(user).post("/chat/", {"slug": slug.upper(), "title": "News", "group": rooms.group.pk})
    assert response.status_code == 302 and response["Location"] == f"/chat/{slug}/"
    room = Room.objects.get(slug=slug)
    assert (room.title, room.group, room.created_by) == ("News", rooms.group, user)


@pytest.mark.parametrize("slug, error", [
    ("team news", "Enter a valid"), ("direct", "reserved"), ("taken", "already exists"), ("a--b", "single hyphens"),
])
def test_bad_room_names_are_refused(make_user, logged_in, rooms, slug: str, error: str) -> None:
    slug = rooms.public.slug if slug == "taken" else slug
    response = logged_in(make_user()).post("/chat/", {"slug": slug})
    assert response.status_code == 400
    assert error in response.content.decode()


def test_rooms_cannot_be_given_to_a_group_one_is_not_in(make_user, logged_in, rooms) -> None:
    slug = unique("theirs")
    response = logged_in(make_user()).post("/chat/", {"slug": slug, "group": rooms.group.pk})
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
    assert not Room.objects.filter(slug=slug).exists()


def test_anonymous_visitors_must_log_in_to_create_a_room() -> None:
    slug = unique("mine")
    response = Client().post("/chat/", {"slug": slug})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert not Room.objects.filter(slug=slug).exists()


def test_room_page_renders_the_last_50_messages(make_user, rooms) -> None:
    author = make_user()
    ids = [Message.objects.create(room=rooms.public, author=author, text=f"message {n:03}").id for n in range(60)]
    client = Client()
    page = client.get(url(rooms.public)).content.decode()
    assert f'data-id="{ids[10]}"' in page and f'data-id="{ids[-1]}"' in page
    assert f'data-id="{ids[9]}"' not in page and "message 009" not in page
    assert 'data-more="1"' in page and "Scroll up for older messages" in page
    assert 'name="message"' not in page and "to post." in page  # anonymous: read only
    older = client.get(url(rooms.public, f"messages/?before={ids[10]}")).json()
    assert [m["id"] for m in older["messages"]] == ids[:10] and older["more"] is False


def test_room_page_access(make_user, logged_in, rooms) -> None:
    member, outsider = logged_in(make_user(groups=[rooms.group.name])), logged_in(make_user())
    restricted = rooms.restricted
    assert Client().get("/chat/nowhere-at-all/").status_code == 404
    response = Client().get(url(restricted))
    assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next=/chat/{restricted.slug}/"
    response = outsider.get(url(restricted))
    assert response.status_code == 403
    assert f"Only members of the group {rooms.group.name}" in response.content.decode()
    page = member.get(url(restricted)).content.decode()
    assert 'name="message"' in page and f'data-socket="chat.{restricted.slug}?subscribe-broadcast"' in page
    assert f'data-presence-socket="chat/presence/{restricted.slug}/"' in page
    for what in ("messages/", "presence/"):
        assert outsider.get(url(restricted, what)).status_code == 403
        assert Client().get(url(restricted, what)).status_code == 403
        assert member.get(url(restricted, what)).status_code == 200


# -- posting -------------------------------------------------------------------------------


def test_posting_saves_then_publishes_in_order(make_user, logged_in, rooms, listen) -> None:
    channel = room_channel(rooms.public.slug)
    subscription = listen(channel)
    client = logged_in(make_user())
    replies = [client.post(url(rooms.public, "messages/"), {"message": f"  hello {n}  "}) for n in range(3)]
    assert [reply.status_code for reply in replies] == [201, 201, 201]
    saved = list(rooms.public.messages.all())
    assert [m.text for m in saved] == ["hello 0", "hello 1", "hello 2"]
    assert subscription.events() == [(channel, m.as_event()) for m in saved]
    assert [reply.json() for reply in replies] == [m.as_event() for m in saved]


@pytest.mark.parametrize("text, reason", [
    ("", "Write a message first."), ("   ", "Write a message first."), ("x" * 1001, "at most 1000 characters"),
    ("nul\x00byte", "Null characters are not allowed."),
])
def test_invalid_messages_are_refused_with_a_reason(make_user, logged_in, rooms, listen, text: str,
                                                    reason: str) -> None:
    subscription = listen(room_channel(rooms.public.slug))
    response = logged_in(make_user()).post(url(rooms.public, "messages/"), {"message": text})
    assert response.status_code == 400 and reason in response.json()["error"]
    assert not rooms.public.messages.exists() and subscription.events() == []


def test_message_length_is_a_setting(chat_settings, make_user, logged_in, rooms) -> None:
    chat_settings(CHAT_MAX_MESSAGE_LENGTH=5)
    client = logged_in(make_user())
    assert client.post(url(rooms.public, "messages/"), {"message": "12345"}).status_code == 201
    assert client.post(url(rooms.public, "messages/"), {"message": "123456"}).status_code == 400


def test_who_may_post(make_user, logged_in, rooms) -> None:
    post = url(rooms.public, "messages/")
    response = Client().post(post, {"message": "hi"})
    assert response.status_code == 403 and response.json() == {"error": "Log in to post."}
    response = Client().post(post, {"message": "hi"}, **HTML)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    response = logged_in(make_user()).post(url(rooms.restricted, "messages/"), {"message": "hi"})
    assert response.status_code == 403 and "Only members" in response.json()["error"]
    member = logged_in(make_user(groups=[rooms.group.name]))
    assert member.post(url(rooms.restricted, "messages/"), {"message": "hi"}).status_code == 201
    assert not rooms.public.messages.exists()
    assert [m.text for m in rooms.restricted.messages.all()] == ["hi"]


def test_form_posts_without_javascript(make_user, logged_in, rooms) -> None:
    client = logged_in(make_user())
    response = client.post(url(rooms.public, "messages/"), {"message": "no script"}, **HTML)
    assert response.status_code == 302 and response["Location"] == url(rooms.public)
    response = client.post(url(rooms.public, "messages/"), {"message": ""}, **HTML)
    assert response.status_code == 400 and "Write a message first." in response.content.decode()


def test_rate_limit_refuses_with_429_and_a_reason(chat_settings, make_user, logged_in, rooms, listen) -> None:
    chat_settings(CHAT_RATE_LIMIT=(3, 60))
    subscription = listen(room_channel(rooms.public.slug))
    post = url(rooms.public, "messages/")
    friend = make_user()
    client, other = logged_in(make_user()), logged_in(make_user())
    assert [client.post(post, {"message": f"m{n}"}).status_code for n in range(3)] == [201] * 3
    refused = client.post(post, {"message": "one too many"})
    assert refused.status_code == 429
    assert refused.json()["error"].startswith("You are posting too fast: at most 3 messages every 60 seconds.")
    assert 1 <= int(refused["Retry-After"]) <= 60
    # One budget per user, whatever the conversation.
    assert client.post(f"/chat/direct/{friend.username}/messages/", {"message": "psst"}).status_code == 429
    assert other.post(post, {"message": "mine"}).status_code == 201
    assert [m.text for m in rooms.public.messages.all()] == ["m0", "m1", "m2", "mine"]
    assert [event["text"] for _, event in subscription.events()] == ["m0", "m1", "m2", "mine"]
    page = client.post(post, {"message": "again"}, **HTML)
    assert page.status_code == 429 and "posting too fast" in page.content.decode()


def test_messages_are_shown_as_text(make_user, logged_in, rooms) -> None:
    response = logged_in(make_user()).post(url(rooms.public, "messages/"), {"message": XSS})
    assert response.json()["text"] == XSS
    page = Client().get(url(rooms.public)).content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and XSS not in page


def test_history_endpoint(make_user, rooms) -> None:
    author = make_user()
    ids = [Message.objects.create(room=rooms.public, author=author, text=str(n)).id for n in range(5)]
    client = Client()
    after = client.get(url(rooms.public, f"messages/?after={ids[2]}")).json()
    assert [m["id"] for m in after["messages"]] == ids[3:] and after["more"] is False
    assert client.get(url(rooms.public, "messages/?after=x")).status_code == 400
    assert "not both" in client.get(url(rooms.public, "messages/?after=1&before=2")).json()["error"]


def test_presence_endpoint(rooms) -> None:
    presence = Presence(rooms.public.slug)
    presence.join("somebody", "tab")
    try:
        snapshot = Client().get(url(rooms.public, "presence/")).json()
        assert snapshot["type"] == "presence" and snapshot["users"] == ["somebody"]
        assert "somebody" in Client().get(url(rooms.public)).content.decode()
    finally:
        presence.leave("somebody", "tab")


def test_pages_stay_up_without_redis(redis_server, chat_settings, make_user, logged_in, rooms) -> None:
    # The site keeps sessions in Redis first; the chat's own behaviour is what is tested here.
    chat_settings(SESSION_ENGINE="django.contrib.sessions.backends.db")
    poster = logged_in(make_user())
    redis_server.stop()  # the next test starts it again
    assert "Presence is unavailable right now." in Client().get(url(rooms.public)).content.decode()
    assert Client().get(url(rooms.public, "presence/")).status_code == 503
    response = poster.post(url(rooms.public, "messages/"), {"message": "lost?"})
    assert response.status_code == 503 and "Redis is unreachable" in response.json()["error"]
    assert not rooms.public.messages.exists()


# -- private messages ----------------------------------------------------------------------


def test_private_messages_reach_the_two_users_only(make_user, logged_in, listen) -> None:
    alice, bob, carol = make_user(), make_user(), make_user()
    prefix = get_settings().prefix
    channels = {user.username: channel_name(prefix, "user", DIRECT, user.username) for user in (alice, bob, carol)}
    subscription = listen(*channels.values())
    response = logged_in(alice).post(f"/chat/direct/{bob.username}/messages/", {"message": "psst"})
    assert response.status_code == 201
    message = PrivateMessage.objects.get(sender=alice)
    assert (message.recipient, message.text) == (bob, "psst")
    received = subscription.events()
    assert sorted(channel for channel, _ in received) == sorted([channels[alice.username], channels[bob.username]])
    assert all(event == message.as_event() for _, event in received)


def test_private_history_is_the_pairs_own(make_user, logged_in) -> None:
    alice, bob, carol = make_user(), make_user(), make_user()
    PrivateMessage.objects.create(sender=alice, recipient=bob, text="for bob")
    PrivateMessage.objects.create(sender=carol, recipient=alice, text="for alice")
    bobs = logged_in(bob).get(f"/chat/direct/{alice.username}/messages/").json()["messages"]
    assert [m["text"] for m in bobs] == ["for bob"]
    carols = logged_in(carol).get(f"/chat/direct/{alice.username}/messages/").json()["messages"]
    assert [m["text"] for m in carols] == ["for alice"]
    page = logged_in(carol).get(f"/chat/direct/{bob.username}/").content.decode()
    assert "for bob" not in page and 'data-socket="chat-direct?subscribe-user"' in page
    index = logged_in(alice).get("/chat/direct/").content.decode()
    assert index.index(carol.username) < index.index(bob.username)  # latest conversation first


def test_private_message_errors(make_user, logged_in) -> None:
    alice, bob = make_user(), make_user()
    assert Client().get(f"/chat/direct/{bob.username}/").status_code == 302  # log in first
    response = Client().post(f"/chat/direct/{bob.username}/messages/", {"message": "hi"})
    assert response.status_code == 403 and "Log in" in response.json()["error"]
    own = logged_in(alice)
    response = own.post(f"/chat/direct/{alice.username}/messages/", {"message": "me"})
    assert response.status_code == 400 and "someone else" in response.json()["error"]
    assert own.post("/chat/direct/nobody-here/messages/", {"message": "hi"}).status_code == 404
    assert "There is no user" in own.get("/chat/direct/?to=nobody-here", follow=True).content.decode()
    assert own.get(f"/chat/direct/?to={bob.username}")["Location"] == f"/chat/direct/{bob.username}/"
    assert not PrivateMessage.objects.filter(sender=alice).exists()
