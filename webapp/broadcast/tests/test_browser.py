"""Banners in Chromium, on pages served by the real stack, sent from the admin in another context."""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from webapp.broadcast.models import Broadcast
from webapp.broadcast.sending import SETTLING, send

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("no_live_broadcasts")]

ADD_URL = "/admin/broadcast/broadcast/add/"


@pytest.fixture
def open_page(new_page: Callable[..., Page]) -> Callable[..., Page]:
    """Returns ``open_page(path="/", user=None, listening=True)``: a page of the site in a browser
    context of its own (as ``user``, or anonymously), once its broadcast socket is open."""

    def open_(path: str = "/", user: Any = None, listening: bool = True) -> Page:
        page = new_page(user)
        page.goto(path)
        if listening:
            wait_until_listening(page)
        return page

    return open_


def wait_until_listening(page: Page) -> None:
    """Waits until the page's broadcast socket is open (and so subscribed)."""
    expect(page.locator("#broadcast-banners")).to_have_attribute("data-socket-state", "open", timeout=10_000)


@pytest.fixture
def admin_page(open_page, make_staff) -> Page:
    """The admin's add form, in its own browser context, as staff allowed to send."""
    return open_page(ADD_URL, user=make_staff("add", "change", "view"), listening=False)


def save_in_admin(admin_page: Page, message: str, level: str = "info", users: tuple[Any, ...] = ()) -> None:
    admin_page.goto(ADD_URL)
    admin_page.fill("#id_message", message)
    admin_page.check(f"input[name=level][value={level}]")
    if users:
        admin_page.check("input[name=audience][value=users]")
        for user in users:
            admin_page.select_option("#id_users_from", label=user.username)
            admin_page.click("#id_users_add")
    admin_page.click("input[name=_save]")
    expect(admin_page.locator(".messagelist .success", has_text=f"Sent “{message}”")).to_be_visible()


def banner(page: Page, broadcast: Broadcast | str) -> Any:
    if isinstance(broadcast, str):
        return page.locator(".broadcast", has_text=broadcast)
    return page.locator(f'.broadcast[data-broadcast-id="{broadcast.pk}"]')


@pytest.mark.parametrize("path", ["/", "/pubsub/"])
def test_a_banner_appears_on_an_open_page_when_the_admin_saves(open_page, admin_page, artifacts_dir, path) -> None:
    page = open_page(path)
    message = f"Deploy in five minutes ({uuid4().hex[:6]})"
    save_in_admin(admin_page, message, level="warning")
    # Within a second of the save, without a reload.
    expect(banner(page, message)).to_be_visible(timeout=1000)
    expect(banner(page, message)).to_have_class("broadcast broadcast-warning")
    page.screenshot(path=str(artifacts_dir / f"broadcast-live-{path.strip('/') or 'home'}.png"))
    admin_page.reload()  # the list as it is once the page has it, with its delivery count
    admin_page.screenshot(path=str(artifacts_dir / "broadcast-admin-changelist.png"))


def test_a_page_opened_later_shows_every_live_broadcast(open_page, send_from_admin, artifacts_dir) -> None:
    sent = [send_from_admin(level=level) for level in ("info", "warning", "critical")]
    page = open_page()
    for broadcast in sent:
        # Once: the last one also comes from the socket's replay.
        expect(banner(page, broadcast)).to_have_count(1)
        expect(banner(page, broadcast).locator(".broadcast-message")).to_have_text(broadcast.message)
        expect(banner(page, broadcast).locator(".broadcast-level")).to_have_text(broadcast.get_level_display())
    expect(banner(page, sent[2])).to_have_attribute("role", "alert")
    page.screenshot(path=str(artifacts_dir / "broadcast-levels.png"))


def test_a_targeted_broadcast_shows_only_on_its_users_pages(open_page, admin_page, make_user, artifacts_dir) -> None:
    alice, bob = make_user(), make_user()
    alice_page, bob_page = open_page(user=alice), open_page(user=bob)
    private = f"For Alice only ({uuid4().hex[:6]})"
    save_in_admin(admin_page, private, users=(alice,))
    expect(banner(alice_page, private)).to_be_visible(timeout=5000)
    # Sent after the private one: once Bob's page shows it, the private one had its chance.
    public = f"For everyone ({uuid4().hex[:6]})"
    save_in_admin(admin_page, public)
    expect(banner(bob_page, public)).to_be_visible(timeout=5000)
    expect(banner(bob_page, private)).to_have_count(0)
    bob_page.reload()
    expect(banner(bob_page, public)).to_be_visible()
    expect(banner(bob_page, private)).to_have_count(0)
    alice_page.screenshot(path=str(artifacts_dir / "broadcast-targeted-alice.png"))
    bob_page.screenshot(path=str(artifacts_dir / "broadcast-targeted-bob.png"))


def test_a_dismissed_broadcast_stays_dismissed_in_that_browser(open_page, send_from_admin, browser, stack) -> None:
    dismissed = send_from_admin()
    page = open_page()
    banner(page, dismissed).locator(".broadcast-dismiss").click()
    expect(banner(page, dismissed)).to_have_count(0)
    page.reload()
    wait_until_listening(page)
    # The page still knows of it (and the socket replayed it): it is the browser that hides it.
    live = json.loads(page.locator("#broadcast-live").text_content())["live"]
    assert [item["id"] for item in live] == [dismissed.pk]
    expect(banner(page, dismissed)).to_have_count(0)
    later = send_from_admin()
    expect(banner(page, later)).to_be_visible(timeout=5000)
    expect(banner(page, dismissed)).to_have_count(0)
    # Another browser (context) has its own storage: it still shows the banner.
    other = open_page()
    expect(banner(other, dismissed)).to_be_visible()


def test_a_banner_leaves_when_its_broadcast_expires(open_page) -> None:
    short = Broadcast.objects.create(message="brief", expires_at=timezone.now() + timedelta(seconds=3))
    page = open_page()
    send(short)
    expect(banner(page, short)).to_be_visible(timeout=2000)
    expect(banner(page, short)).to_have_count(0, timeout=10_000)
    page.reload()
    expect(banner(page, short)).to_have_count(0)


def test_deleting_a_broadcast_takes_its_banner_down(open_page, send_from_admin, admin_client) -> None:
    kept, deleted = send_from_admin(), send_from_admin()
    page = open_page()
    expect(banner(page, deleted)).to_be_visible()
    response = admin_client.post(f"/admin/broadcast/broadcast/{deleted.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    expect(banner(page, deleted)).to_have_count(0, timeout=5000)
    page.reload()
    wait_until_listening(page)
    expect(banner(page, kept)).to_be_visible()
    expect(banner(page, deleted)).to_have_count(0)


def test_the_admin_says_whether_the_delivery_count_is_final(open_page, admin_page, artifacts_dir) -> None:
    pages = [open_page(), open_page("/pubsub/")]
    admin_page.set_viewport_size({"width": 1600, "height": 600})  # the whole list, its last column included
    message = f"Counted ({uuid4().hex[:6]})"
    save_in_admin(admin_page, message)  # then the list, at once
    for page in pages:
        expect(banner(page, message)).to_be_visible(timeout=5000)
    reached = admin_page.locator("#result_list tr", has_text=message).locator(".delivery")
    expect(reached).to_have_attribute("data-state", "counting")
    expect(reached).to_contain_text("still counting")
    admin_page.screenshot(path=str(artifacts_dir / "broadcast-admin-counting.png"))
    # Final SETTLING seconds after the send and the last count; the list says so once reloaded.
    deadline = time.monotonic() + SETTLING + 30
    while reached.get_attribute("data-state") != "final":
        assert time.monotonic() < deadline, "the count never became final"
        admin_page.wait_for_timeout(500)
        admin_page.reload()
    expect(reached).to_have_text(re.compile(r"^2 · final, last counted \d\d:\d\d:\d\d$"))
    admin_page.screenshot(path=str(artifacts_dir / "broadcast-admin-final.png"))
    admin_page.locator("#result_list a", has_text=message).click()
    expect(admin_page.locator(".field-sockets_reached .delivery")).to_have_attribute("data-state", "final")
