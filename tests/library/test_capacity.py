"""A process at its capacity (its file limit minus what it keeps for other files) refuses a
handshake with 503 and Retry-After, before planning it: a socket it opened would run out of files
(and take the process's Redis connection or log with it)."""
import resource
from typing import Any

import pytest

from ws4redis_server import server
from ws4redis_server.metrics import STATS


def test_capacity_is_the_file_limit_minus_the_reserve() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert server.capacity() == max(1, soft - server.RESERVED_FILES)


def test_a_full_process_answers_503_with_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "capacity", lambda: 2)
    monkeypatch.setattr(server, "_open", {object(), object()})
    answered: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answered.append((status, headers))

    def no_transport(environ: dict[str, Any], settings: Any) -> Any:
        raise AssertionError("a full process must not make a transport")

    refused = STATS["refused_full"]
    body = b"".join(server.serve({"PATH_INFO": "/ws/full"}, start_response, no_transport))
    [(status, headers)] = answered
    assert status == "503 Service Unavailable"
    assert ("Retry-After", "1") in headers
    assert body.decode() == f"503 Service Unavailable: {server.FULL_REASON}\n"
    assert STATS["refused_full"] == refused + 1
