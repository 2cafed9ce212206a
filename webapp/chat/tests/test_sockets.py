"""The chat's sockets through nginx and the uWSGI sidecar, with real session cookies."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import ExitStack
from http.cookies import SimpleCookie
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from webapp.chat.models import PrivateMessage
from ws4redis_server.testing import connect

pytestmark = pytest.mark.slow


def room_socket(stack: Any, slug: str, session: str | None = None, flags: str = "subscribe-broadcast") -> Any:
    return connect(f"{stack.ws_url}/ws/chat.{slug}?{flags}", session=session)


def presence_socket(stack: Any, slug: str, session: str | None) -> Any:
    return connect(f"{stack.ws_url}/ws/chat/presence/{slug}/", session=session)


def receive(ws: Any, timeout: float = 5) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def next_message(ws: Any, timeout: float = 5) -> dict[str, Any]:
    """Returns the next message event on a room socket, skipping presence snapshots."""
    while (event := receive(ws, timeout))["type"] == "presence":
        pass
    return event


def refusal(url: str, session: str | None) -> tuple[int, str]:
    """Returns the status and body with which the server refuses the handshake to ``url``."""
    with pytest.raises(InvalidStatus) as refused:
        connect(url, session=session).close()
    return refused.value.response.status_code, bytes(refused.value.response.body).decode()


def wait_for_presence(ws: Any, users: list[str], timeout: float = 10) -> dict[str, Any]:
    """Reads presence snapshots from ``ws`` until one lists ``users``; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        event = receive(ws, max(0.1, deadline - time.monotonic()))
        if event["type"] == "presence" and event["users"] == users:
            return event


class Browserless:
    """Posts to the site through nginx and uWSGI as a browser does: session cookie, CSRF token."""

    def __init__(self, stack: Any, session: str) -> None:
        self.base = stack.http_url
        self.session = session

    def post(self, path: str, message: str) -> tuple[int, dict[str, Any]]:
        """Opens the page of ``path``'s conversation, then posts ``message`` to ``path``;
        returns the status and the JSON answer."""
        page_url = self.base + path.removesuffix("messages/")
        with urllib.request.urlopen(urllib.request.Request(page_url, headers={"Cookie": f"sessionid={self.session}"}),
                                    timeout=10) as response:
            page = response.read().decode()
            cookies: SimpleCookie = SimpleCookie()
            for header in response.headers.get_all("Set-Cookie") or []:
                cookies.load(header)
        csrf = cookies["csrftoken"].value
        token = page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
        request = urllib.request.Request(
            self.base + path, data=urllib.parse.urlencode({"message": message, "csrfmiddlewaretoken": token}).encode(),
            headers={"Accept": "application/json", "Referer": page_url,
                     "Cookie": f"sessionid={self.session}; csrftoken={csrf}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


def test_a_non_member_is_refused_before_the_upgrade(stack, rooms, make_user, login_cookie, logged_in) -> None:
    slug = rooms.restricted.slug
    url = f"{stack.ws_url}/ws/chat.{slug}?subscribe-broadcast"
    status, body = refusal(url, login_cookie(make_user()))
    assert status == 403 and f"Only members of the group of room '{slug}' may subscribe to it" in body
    assert refusal(url, None)[0] == 403
    status, body = refusal(f"{stack.ws_url}/ws/chat.no-such-room?subscribe-broadcast", None)
    assert status == 403 and "There is no chat room 'no-such-room'" in body
    status, body = refusal(f"{stack.ws_url}/ws/chat.{rooms.public.slug}?subscribe-broadcast&publish-broadcast", None)
    assert status == 403 and f"post messages with POST /chat/{rooms.public.slug}/messages/" in body

    member = make_user(groups=[rooms.group.name])
    with room_socket(stack, slug, login_cookie(member)) as ws:
        posted = logged_in(member).post(f"/chat/{slug}/messages/", {"message": "members only"}).json()
        assert next_message(ws) == posted


def test_messages_arrive_live_in_server_order(stack, rooms, make_user, login_cookie) -> None:
    alice, bob = make_user(), make_user()
    posters = [Browserless(stack, login_cookie(alice)), Browserless(stack, login_cookie(bob))]
    path = f"/chat/{rooms.public.slug}/messages/"
    with room_socket(stack, rooms.public.slug, login_cookie(alice)) as alice_ws, \
            room_socket(stack, rooms.public.slug) as anonymous_ws:
        replies = [posters[n % 2].post(path, f"message {n}") for n in range(8)]
        # Alice's fifth and sixth posts within ten seconds: the sixth is over the limit.
        replies += [posters[0].post(path, f"message {n}") for n in (8, 9)]
        assert [status for status, _ in replies] == [201] * 9 + [429]
        sent = [reply for _, reply in replies[:9]]
        for ws in (alice_ws, anonymous_ws):
            got = [next_message(ws) for _ in sent]
            assert [event["id"] for event in got] == sorted(event["id"] for event in got)
            assert got == sent
    assert replies[-1][1]["error"].startswith("You are posting too fast: at most 5 messages every 10 seconds.")


def test_private_messages_never_reach_another_user(stack, make_user, login_cookie, logged_in) -> None:
    alice, bob, carol, dave = make_user(), make_user(), make_user(), make_user()
    carol_session = login_cookie(carol)
    crafted = [
        "chat-direct?subscribe-user&subscribe-broadcast&subscribe-group&subscribe-session&echo",
        f"chat-direct?subscribe-user&user={alice.username}&users={bob.username}",
        f"chat-direct/?subscribe-user&username={bob.username}",
    ]
    # Naming another user's channel as the facility is refused outright.
    status, body = refusal(f"{stack.ws_url}/ws/user:{bob.username}:chat-direct?subscribe-broadcast", carol_session)
    assert status == 400 and "invalid facility" in body
    assert refusal(f"{stack.ws_url}/ws/chat-direct?subscribe-user&publish-user", carol_session)[0] == 403
    assert refusal(f"{stack.ws_url}/ws/chat-direct?subscribe-user", None)[0] == 403

    with ExitStack() as opened:
        sockets = [opened.enter_context(connect(f"{stack.ws_url}/ws/{path}", session=carol_session))
                   for path in crafted]
        bob_ws = opened.enter_context(connect(f"{stack.ws_url}/ws/chat-direct?subscribe-user",
                                              session=login_cookie(bob)))
        secret = logged_in(alice).post(f"/chat/direct/{bob.username}/messages/", {"message": "secret"}).json()
        assert receive(bob_ws) == secret
        # Published after the secret, on the same Redis: a socket that had the secret gets it first.
        for_carol = logged_in(dave).post(f"/chat/direct/{carol.username}/messages/", {"message": "hi"}).json()
        for ws in sockets:
            assert receive(ws) == for_carol
    assert PrivateMessage.objects.filter(sender=alice, recipient=bob, text="secret").count() == 1


def test_presence_counts_tabs_once_and_follows_closing(stack, rooms, make_user, login_cookie) -> None:
    alice, bob = make_user(), make_user()
    slug = rooms.public.slug
    a, b = alice.username, bob.username
    with room_socket(stack, slug) as observer, presence_socket(stack, slug, login_cookie(alice)) as first_tab:
        assert receive(first_tab)["users"] == [a]
        wait_for_presence(observer, [a])
        with presence_socket(stack, slug, login_cookie(alice)) as second_tab, \
                presence_socket(stack, slug, login_cookie(bob)) as bob_tab:
            assert receive(second_tab)["users"] == [a]  # a second tab of alice's changes nothing
            assert receive(bob_tab)["users"] == sorted([a, b])
            joined = wait_for_presence(observer, sorted([a, b]))
            first_tab.close()  # alice still has a tab open: still online
            second_tab.close()
            left = receive(observer)  # one change only, whichever tab the server sees close first
            assert left["users"] == [b]
            assert left["version"] > joined["version"]
        wait_for_presence(observer, [])


def test_presence_sockets_of_strangers_are_closed_with_a_reason(stack, rooms, make_user, login_cookie) -> None:
    cases = [
        (rooms.restricted.slug, login_cookie(make_user()), "Only members of the group of room"),
        (rooms.public.slug, None, "Log in to appear online"),
        ("no-such-room", login_cookie(make_user()), "There is no chat room"),
    ]
    for slug, session, reason in cases:
        with presence_socket(stack, slug, session) as ws, pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 1008 and reason in closed.value.rcvd.reason
