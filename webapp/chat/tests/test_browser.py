"""The chat in Chromium, on pages served by the real stack: two people in two browser contexts."""
from __future__ import annotations

import os
import signal
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from webapp.chat.models import Message, PrivateMessage

from .conftest import unique

pytestmark = [pytest.mark.browser, pytest.mark.slow]

XSS = "<img src=x onerror=alert(1)>"
PASSWORD = "a-long-passphrase-9"


def open_room(page: Page, slug: str) -> None:
    page.goto(f"/chat/{slug}/")
    expect(page.locator("#chat-status")).to_have_text("open", timeout=10_000)


def send(page: Page, text: str) -> None:
    """Types ``text`` in the message box and presses Enter."""
    box = page.locator("input[name=message]")
    box.fill(text)
    box.press("Enter")


def message(page: Page, text: str) -> Any:
    return page.locator(".chat-message .chat-text", has_text=text)


def online(page: Page) -> Any:
    return page.locator("#chat-online li")


def ids_in_order(page: Page) -> list[int]:
    return [int(value) for value in page.locator(".chat-message").evaluate_all("items => items.map(i => i.dataset.id)")]


def test_two_people_chat_live(stack, new_page, make_user, rooms, artifacts_dir) -> None:
    slug = rooms.public.slug
    # Alice logs in through the login form; Bob signs up.
    alice = make_user(password=PASSWORD)
    alice_page = new_page()
    alice_page.goto(f"/accounts/login/?next=/chat/{slug}/")
    alice_page.fill("#id_username", alice.username)
    alice_page.fill("#id_password", PASSWORD)
    alice_page.click("button[type=submit]")
    expect(alice_page.locator("#chat-status")).to_have_text("open", timeout=10_000)
    expect(online(alice_page)).to_have_text([f"{alice.username} (you)"])

    bob_name = unique("bob")
    bob_page = new_page()
    bob_page.goto(f"/chat/{slug}/")
    bob_page.click(".chat-login >> text=sign up")
    bob_page.fill("#id_username", bob_name)
    bob_page.fill("#id_password1", PASSWORD)
    bob_page.fill("#id_password2", PASSWORD)
    bob_page.click("button[type=submit]")
    expect(bob_page).to_have_url(f"{stack.http_url}/chat/{slug}/")
    expect(bob_page.locator("#chat-status")).to_have_text("open", timeout=10_000)

    # Each sees the other arrive.
    both = sorted([alice.username, bob_name])
    expect(online(alice_page)).to_have_count(2)
    expect(online(alice_page).filter(has_text=bob_name)).to_have_text(bob_name)
    expect(online(bob_page)).to_have_text([f"{name} (you)" if name == bob_name else name for name in both])

    send(alice_page, "Hello Bob!")
    expect(message(bob_page, "Hello Bob!")).to_be_visible()
    expect(message(alice_page, "Hello Bob!")).to_have_count(1)  # once, though both HTTP and socket bring it
    expect(alice_page.locator("input[name=message]")).to_have_value("")
    send(bob_page, "Hi Alice")
    send(bob_page, XSS)
    for page in (alice_page, bob_page):
        expect(message(page, XSS)).to_have_text(XSS)
        expect(message(page, "Hi Alice")).to_be_visible()
        assert page.locator("#chat-messages img").count() == 0
    assert ids_in_order(alice_page) == ids_in_order(bob_page)
    assert ids_in_order(alice_page) == list(rooms.public.messages.values_list("id", flat=True))
    alice_page.screenshot(path=artifacts_dir / "chat-alice.png")
    bob_page.screenshot(path=artifacts_dir / "chat-bob.png")

    # The page as rendered by the server shows the text as text too.
    alice_page.reload()
    expect(message(alice_page, XSS)).to_have_text(XSS)
    assert alice_page.locator("#chat-messages img").count() == 0

    # Bob closes his page: Alice sees him leave.
    bob_page.close()
    expect(online(alice_page)).to_have_text([f"{alice.username} (you)"])
    alice_page.screenshot(path=artifacts_dir / "chat-after-bob-left.png")
    assert alice_page.dialogs == [] and bob_page.dialogs == []


def test_older_messages_load_on_scroll(new_page, make_user, rooms, artifacts_dir) -> None:
    author = make_user()
    ids = [Message.objects.create(room=rooms.public, author=author, text=f"message {n:03}").id for n in range(120)]
    page = new_page()
    open_room(page, rooms.public.slug)
    assert ids_in_order(page) == ids[70:]
    expect(message(page, "message 119")).to_be_in_viewport()
    for shown in (100, 120):
        page.locator("#chat-log").evaluate("log => log.scrollTo(0, 0)")
        expect(page.locator(".chat-message")).to_have_count(shown)
    assert ids_in_order(page) == ids
    expect(page.locator("#chat-older")).to_have_text("This is the beginning.")
    page.screenshot(path=artifacts_dir / "chat-history.png")


def test_posting_too_fast_shows_why(new_page, make_user, rooms, artifacts_dir) -> None:
    page = new_page(make_user())
    open_room(page, rooms.public.slug)
    for n in range(5):
        send(page, f"burst {n}")
        expect(message(page, f"burst {n}")).to_be_visible()
    send(page, "one too many")
    expect(page.locator("#chat-error")).to_contain_text("You are posting too fast: at most 5 messages every 10 seconds")
    expect(page.locator("input[name=message]")).to_have_value("one too many")  # kept, to send again later
    expect(message(page, "one too many")).to_have_count(0)
    page.screenshot(path=artifacts_dir / "chat-rate-limited.png")


def test_anonymous_visitors_read_but_do_not_post(new_page, make_user, logged_in, rooms) -> None:
    page = new_page()
    open_room(page, rooms.public.slug)
    expect(page.locator("input[name=message]")).to_have_count(0)
    expect(page.locator(".chat-login")).to_contain_text("Log in or sign up to post.")
    logged_in(make_user()).post(f"/chat/{rooms.public.slug}/messages/", {"message": "for every reader"})
    expect(message(page, "for every reader")).to_be_visible()


def test_private_messages_live_between_two_people_only(new_page, make_user, artifacts_dir) -> None:
    alice, bob, carol = make_user(), make_user(), make_user()
    alice_page, bob_page, carol_page = new_page(alice), new_page(bob), new_page(carol)
    for page, other in ((alice_page, bob), (bob_page, alice), (carol_page, alice)):
        page.goto(f"/chat/direct/{other.username}/")
        expect(page.locator("#chat-status")).to_have_text("open", timeout=10_000)

    send(alice_page, "just between us")
    expect(message(bob_page, "just between us")).to_be_visible()
    send(bob_page, "agreed")
    expect(message(alice_page, "agreed")).to_be_visible()
    # Carol's page (with Alice) neither shows nor is told of Alice and Bob's messages; then Alice
    # writes to Carol from another page, and Carol's page shows it live.
    other = new_page(alice)
    other.goto(f"/chat/direct/{carol.username}/")
    send(other, "hello Carol")
    expect(message(carol_page, "hello Carol")).to_be_visible()
    expect(carol_page.locator(".chat-message")).to_have_count(1)
    expect(carol_page.locator("#chat-elsewhere li")).to_have_count(0)
    # Bob's page with Alice is told of nothing either: the message was not his.
    expect(bob_page.locator("#chat-elsewhere li")).to_have_count(0)
    assert PrivateMessage.objects.filter(recipient=carol).count() == 1
    alice_page.screenshot(path=artifacts_dir / "chat-private.png")


def test_a_page_catches_up_after_its_socket_drops(stack, new_page, make_user, rooms, artifacts_dir) -> None:
    page = new_page(make_user())
    open_room(page, rooms.public.slug)
    # Every WebSocket worker dies at once (uWSGI's master starts new ones): the page's sockets drop.
    for pid in stack.worker_pids("websocket"):
        os.kill(pid, signal.SIGKILL)
    expect(page.locator("#chat-status")).not_to_have_text("open", timeout=10_000)
    # Saved but never heard by the page (as if published while no worker listened): only the
    # history has it.
    Message.objects.create(room=rooms.public, author=make_user(), text="said while you were away")
    expect(page.locator("#chat-status")).to_have_text("open", timeout=60_000)
    expect(message(page, "said while you were away")).to_be_visible()
    send(page, "and after")
    expect(message(page, "and after")).to_be_visible()
    assert ids_in_order(page) == list(rooms.public.messages.values_list("id", flat=True))
    page.screenshot(path=artifacts_dir / "chat-caught-up.png")


def test_a_message_of_spaces_only_is_answered_with_an_error(new_page, make_user, rooms) -> None:
    page = new_page(make_user())
    open_room(page, rooms.public.slug)
    send(page, "   ")
    expect(page.locator("#chat-error")).to_have_text("Write a message first: spaces alone are not sent.")
    expect(page.locator(".chat-message")).to_have_count(0)
    send(page, "now with words")
    expect(message(page, "now with words")).to_be_visible()
    expect(page.locator("#chat-error")).to_be_hidden()
