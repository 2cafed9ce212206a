"""What real sockets on facility ``broadcast`` receive, through nginx and the uWSGI sidecar."""
from __future__ import annotations

import json
import re
import time
from contextlib import ExitStack
from typing import Any
from uuid import uuid4

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from websockets.exceptions import InvalidStatus

from webapp.broadcast.sending import FACILITY, deliveries
from ws4redis_server.testing import connect

pytestmark = pytest.mark.usefixtures("no_live_broadcasts")

FLAGS = "subscribe-broadcast&subscribe-user&subscribe-group"


def page_socket(stack: Any, session: str | None = None, flags: str = FLAGS) -> Any:
    """Connects as a page of the site does (as the user of ``session``, or anonymously)."""
    return connect(f"{stack.ws_url}/ws/{FACILITY}?{flags}", session=session)


def receive(ws: Any, timeout: float = 5) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def test_a_page_socket_receives_the_json(stack, send_from_admin) -> None:
    with page_socket(stack) as ws:
        broadcast = send_from_admin(message="Deploy at noon", level="critical")
        payload = receive(ws)
    assert payload["id"] == broadcast.pk
    assert (payload["message"], payload["level"]) == ("Deploy at noon", "critical")


def test_a_socket_opened_later_gets_the_last_broadcast(stack, send_from_admin) -> None:
    send_from_admin()
    last = send_from_admin()
    with page_socket(stack) as ws:
        assert receive(ws)["id"] == last.pk


def test_targeted_broadcasts_reach_only_their_audience(stack, send_from_admin, make_user, login_cookie) -> None:
    group = Group.objects.create(name=f"ops-{uuid4().hex[:8]}")
    alice, carol, bob = make_user(), make_user(groups=[group.name]), make_user()
    with (
        page_socket(stack, login_cookie(alice)) as alice_ws,
        page_socket(stack, login_cookie(carol)) as carol_ws,
        page_socket(stack, login_cookie(bob)) as bob_ws,
        page_socket(stack) as anonymous_ws,
    ):
        to_alice = send_from_admin(audience="users", users=[alice.pk])
        to_group = send_from_admin(audience="groups", groups=[group.pk])
        # Published after the targeted ones, on the same Redis connection: once a socket has
        # this, it would have had the others too.
        everyone = send_from_admin()
        assert [receive(alice_ws)["id"], receive(alice_ws)["id"]] == [to_alice.pk, everyone.pk]
        assert [receive(carol_ws)["id"], receive(carol_ws)["id"]] == [to_group.pk, everyone.pk]
        assert receive(bob_ws)["id"] == everyone.pk
        assert receive(anonymous_ws)["id"] == everyone.pk


def test_sockets_cannot_publish_on_the_facility(stack, make_user, login_cookie) -> None:
    for flags in ("subscribe-broadcast&publish-broadcast", "publish-user", "publish-group&echo"):
        with pytest.raises(InvalidStatus) as caught:
            page_socket(stack, login_cookie(make_user(is_staff=True, is_superuser=True)), flags)
        assert caught.value.response.status_code == 403
        assert b"read-only" in caught.value.response.body


def test_the_admin_counts_the_sockets_that_received_it(stack, send_from_admin, admin_client: Client) -> None:
    with ExitStack() as sockets:
        listening = [sockets.enter_context(page_socket(stack)) for _ in range(3)]
        broadcast = send_from_admin()
        for ws in listening:
            assert receive(ws)["id"] == broadcast.pk
        deadline = time.monotonic() + 5
        while deliveries(broadcast) != 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert deliveries(broadcast) == 3
    changelist = admin_client.get("/admin/broadcast/broadcast/").content.decode()
    assert re.search(r'<td class="field-sockets_reached"><span class="delivery" data-state="(counting|final)"'
                     r'[^>]*>3 <small>', changelist), changelist
