"""A numbered stream of messages published through faults (a Redis failover, a slot migration, a
WebSocket node stopped), and the check of what each socket received: every message it should
have, in order, none twice, or a ``gap`` marker that owns up to what was lost.

Sockets ask for ``ids``: each message is ``<id>\\n<text>``, each position marker ``@<id>[ gap]\\n``
(``ws4redis_server.wire``).
"""
from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from ws4redis_server.wire import parse_frame


@dataclass
class Publisher:
    """Publishes ``<facility> <n>`` on every facility, every ``interval`` seconds, in a thread;
    a publish that raises is retried with the next number (it was never published)."""

    facilities: list[str]
    publish: Callable[[str, str], object]
    interval: float = 0.02
    sent: dict[str, list[int]] = field(default_factory=dict)  # facility -> numbers published
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Publisher:
        self.sent = {facility: [] for facility in self.facilities}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        n = 0
        deadline = time.monotonic() + 300  # bounded whatever happens
        while not self._stop.is_set() and time.monotonic() < deadline:
            n += 1
            for facility in self.facilities:
                try:
                    self.publish(facility, f"{facility} {n}")
                    self.sent[facility].append(n)
                except Exception:
                    self.failures += 1
            time.sleep(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)


@dataclass
class Received:
    numbers: list[int] = field(default_factory=list)
    gaps: int = 0
    closed: bool = False


def read_frames(frames: list[str]) -> Received:
    """What a socket with ``ids`` received, from its text frames in arrival order."""
    got = Received()
    for text in frames:
        frame = parse_frame(text.encode())
        if frame.position:
            got.gaps += frame.gap
        elif frame.data:
            got.numbers.append(int(frame.data.decode().rsplit(" ", 1)[1]))
    return got


def check(sent: list[int], got: Received, after: int = 0) -> str | None:
    """Returns what is wrong with ``got`` (numbers of one facility) given ``sent``: repeats, a
    number out of order, or a number published after ``after`` that is missing without a gap
    marker; None if nothing is."""
    if len(set(got.numbers)) != len(got.numbers):
        return f"repeated: {sorted(n for n in set(got.numbers) if got.numbers.count(n) > 1)[:10]}"
    if got.numbers != sorted(got.numbers):
        return f"out of order: {got.numbers[:50]}"
    missing = [n for n in sent if n > after and n not in set(got.numbers)]
    if missing and not got.gaps:
        return f"{len(missing)} missing without a gap marker, e.g. {missing[:10]}"
    return None


def check_lost_tail_is_a_gap(ws: Any, publisher: Any, primary: redis.Redis, replica_pid: int,
                             kill: Callable[[], object], taken_over: Callable[[], object]) -> None:
    """On a socket ``ws`` with ids: a message replicated, then two the replica never gets (it is
    stopped and its link cut), the primary killed (``kill``) and its replica promoted
    (``taken_over``). The socket got all three live, is then told ``gap`` (the new primary never
    had the last two) and gets what ``publisher`` publishes next."""
    frames = [parse_frame(ws.recv(timeout=10).encode())]  # the position marker
    publisher.publish_message("replicated", expire=0)
    frames.append(parse_frame(ws.recv(timeout=10).encode()))
    assert primary.execute_command("WAIT", 1, 5000) == 1
    # Stop the replica and cut its link: nothing more reaches it, not even through the kernel's buffers.
    os.kill(replica_pid, signal.SIGSTOP)
    try:
        primary.client_kill_filter(_type="replica")
        for text in ("lost 1", "lost 2"):
            publisher.publish_message(text, expire=0)
            frames.append(parse_frame(ws.recv(timeout=10).encode()))
        kill()
    finally:
        os.kill(replica_pid, signal.SIGCONT)
    taken_over()
    marker = parse_frame(ws.recv(timeout=30).encode())
    assert marker.position and marker.gap, marker
    deadline = time.monotonic() + 30
    while True:  # publishing works again once redis-py has found the new primary
        try:
            publisher.publish_message("after", expire=0)
            break
        except redis.RedisError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    after = parse_frame(ws.recv(timeout=10).encode())
    assert [frame.data for frame in frames[1:]] == [b"replicated", b"lost 1", b"lost 2"]
    assert after.data == b"after" and not after.position
