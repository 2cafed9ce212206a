"""Fixtures of the chat tests. The database is shared with the servers the tests start and is
not emptied between tests, so every room and group here has a name of its own."""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client, override_settings

from webapp.chat.models import Room


def unique(prefix: str) -> str:
    """Returns ``prefix`` with a random suffix: a room or group name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Rooms:
    public: Room
    restricted: Room
    group: Group


@pytest.fixture
def rooms() -> Rooms:
    """A public room and a room restricted to a new group."""
    group = Group.objects.create(name=unique("team"))
    return Rooms(Room.objects.create(slug=unique("general"), title="Everyone"),
                 Room.objects.create(slug=unique("team"), group=group), group)


@pytest.fixture
def chat_settings() -> Iterator[Callable[..., None]]:
    """Returns ``change(**settings)``, which overrides Django settings until the test ends."""
    overrides: list[override_settings] = []

    def change(**values: Any) -> None:
        override = override_settings(**values)
        override.enable()
        overrides.append(override)

    yield change
    for override in reversed(overrides):
        override.disable()


@pytest.fixture
def logged_in() -> Callable[[Any], Client]:
    """Returns a function giving a test client logged in as a user."""

    def client_for(user: Any) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return client_for


@pytest.fixture
def listen(redis_server: Any) -> Iterator[Callable[..., Any]]:
    """Returns ``listen(*channels)``: a Redis subscription whose ``events()`` gives what was
    published on those channels since, as (channel, decoded JSON) pairs."""
    subscriptions = []

    def subscribe(*channels: str) -> Any:
        pubsub = redis_server.client().pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(*channels)
        for _ in channels:
            assert pubsub.get_message(timeout=5) is None  # the confirmations, ignored

        def events() -> list[tuple[str, Any]]:
            received = []
            while (message := pubsub.get_message(timeout=0.3)) is not None:
                received.append((message["channel"].decode(), json.loads(message["data"])))
            return received

        pubsub.events = events
        subscriptions.append(pubsub)
        return pubsub

    yield subscribe
    for pubsub in subscriptions:
        pubsub.close()
