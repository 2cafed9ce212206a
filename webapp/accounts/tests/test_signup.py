"""Signing up, logging in and out through the real views."""
from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import User
from django.test import Client, RequestFactory

from ws4redis_server.handshake import identify


def socket_user(client: Client) -> str | None:
    """Returns the username a socket opened with ``client``'s session would have."""
    request = RequestFactory().get("/")
    request.session = client.session
    return identify(request).username


def test_sign_up_logs_the_new_user_in() -> None:
    client, name = Client(), f"newcomer-{uuid.uuid4().hex[:8]}"
    assert "Create an account" in client.get("/accounts/signup/?next=/chat/").content.decode()
    response = client.post("/accounts/signup/", {
        "username": name, "password1": "a-long-passphrase-9", "password2": "a-long-passphrase-9", "next": "/chat/",
    })
    assert response.status_code == 302 and response["Location"] == "/chat/"
    assert User.objects.filter(username=name).exists()
    # Logged in, and so are the sockets this browser opens.
    assert socket_user(client) == name
    assert name in client.get("/chat/").content.decode()


@pytest.mark.parametrize("fields, error", [
    ({"username": "x", "password1": "a-long-passphrase-9", "password2": "different-passphrase-9"}, "didn"),
    ({"username": "bad name!", "password1": "a-long-passphrase-9", "password2": "a-long-passphrase-9"},
     "Enter a valid username"),
    ({"username": "short", "password1": "abc", "password2": "abc"}, "too short"),
])
def test_bad_sign_ups_are_refused_with_reasons(fields: dict, error: str) -> None:
    users = User.objects.count()
    response = Client().post("/accounts/signup/", fields)
    assert response.status_code == 400 and error in response.content.decode()
    assert User.objects.count() == users


def test_sign_up_ignores_a_next_page_on_another_site() -> None:
    response = Client().post("/accounts/signup/", {
        "username": f"newcomer-{uuid.uuid4().hex[:8]}", "next": "https://elsewhere.example/",
        "password1": "a-long-passphrase-9", "password2": "a-long-passphrase-9",
    })
    assert response["Location"] == "/"


def test_log_in_and_out(make_user) -> None:
    client, user = Client(), make_user()
    page = client.get("/accounts/login/").content.decode()
    assert "/accounts/signup/" in page
    response = client.post("/accounts/login/", {"username": user.username, "password": "secret", "next": "/chat/"})
    assert response.status_code == 302 and response["Location"] == "/chat/"
    assert socket_user(client) == user.username
    assert client.post("/accounts/logout/").status_code == 302
    assert socket_user(client) is None
