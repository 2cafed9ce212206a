"""Presence and the rate limit, against a real redis-server."""
from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from webapp.chat import ratelimit
from webapp.chat.facilities import room_channel
from webapp.chat.presence import Presence, snapshot_key


@pytest.fixture
def room(redis_server) -> Presence:
    """A room's presence with a name no other test uses."""
    return Presence(f"room-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def published(redis_server, room: Presence):
    """Returns a function giving the presence snapshots published on the room's channel so far."""
    pubsub = redis_server.client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(room_channel(room.slug))
    assert pubsub.get_message(timeout=5) is None  # the confirmation, ignored

    def drain() -> list[dict]:
        events = []
        while (message := pubsub.get_message(timeout=0.2)) is not None:
            events.append(json.loads(message["data"]))  # as published: no envelope
        return events

    yield drain
    pubsub.close()


def test_several_tabs_of_one_user_count_once(room: Presence, published) -> None:
    assert room.join("alice", "tab-1").users == ["alice"]
    assert room.join("alice", "tab-2").users == ["alice"]
    assert room.join("bob", "tab-1").users == ["alice", "bob"]
    assert room.leave("alice", "tab-1").users == ["alice", "bob"]
    assert room.leave("alice", "tab-2").users == ["bob"]
    assert room.current().users == ["bob"]
    # Published only when the names changed, each snapshot newer than the one before.
    events = published()
    assert [event["users"] for event in events] == [["alice"], ["alice", "bob"], ["bob"]]
    versions = [event["version"] for event in events]
    assert versions == sorted(set(versions))


def test_entries_of_a_crashed_worker_expire(room: Presence, published) -> None:
    room.join("alice", "tab-1")
    # A socket on a worker that then died: nothing refreshes or removes its entry.
    crashed = Presence(room.slug)
    crashed.ttl = 0.2
    crashed.join("ghost", "tab-1")
    time.sleep(0.3)
    assert room.current().users == ["alice"]
    assert [event["users"] for event in published()] == [["alice"], ["alice", "ghost"], ["alice"]]


def test_versions_keep_increasing_when_the_snapshot_is_lost(redis_server, room: Presence) -> None:
    before = room.join("alice", "tab-1").version
    redis_server.client().delete(snapshot_key(room.slug))
    assert room.join("bob", "tab-1").version > before


def test_concurrent_changes_publish_snapshots_in_version_order(room: Presence, published) -> None:
    def visit(name: str) -> None:
        presence = Presence(room.slug)
        for tab in range(5):
            presence.join(name, f"tab-{tab}")
        for tab in range(5):
            presence.leave(name, f"tab-{tab}")

    threads = [threading.Thread(target=visit, args=(f"user{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert room.current().users == []
    events = published()
    versions = [event["version"] for event in events]
    assert versions == sorted(set(versions))
    assert events[-1]["users"] == []


def test_rate_limit_counts_per_user_in_a_sliding_window(chat_settings, redis_server) -> None:
    chat_settings(CHAT_RATE_LIMIT=(3, 2))
    user, other = 10_000 + uuid.uuid4().int % 10_000, 20_000 + uuid.uuid4().int % 10_000
    for _ in range(3):
        ratelimit.acquire(user)
    with pytest.raises(ratelimit.RateLimited) as refused:
        ratelimit.acquire(user)
    assert 0 < refused.value.retry_after <= 2
    assert "at most 3 messages every 2 seconds" in str(refused.value)
    ratelimit.acquire(other)  # another user's budget is their own
    time.sleep(2.1)
    ratelimit.acquire(user)  # the window has slid past the first posts
