"""The pure parts of testecho and its load client: count lines, percentiles, URLs, source addresses."""
from __future__ import annotations

import io

import pytest

from workers.testecho import Progress, latency_summary
from workers.wsload import WsTarget, parse_ws_url, source_addresses


def lines_for(counts: list[int], clients: int = 10_000, delay: float = 60) -> list[str]:
    out = io.StringIO()
    progress = Progress(clients, delay, out, bar=False)
    for count in counts:
        progress.update(count)
    return out.getvalue().splitlines()


def test_count_lines_every_clients_times_3_over_delay() -> None:
    # 10,000 clients, DELAY 60: a line every 500 connections, as in django-c10k-demo.
    assert lines_for([499, 500, 1700, 10_000, 9_999, 9_000, 0]) == [
        "> 500 connections",
        "> 1000 connections", "> 1500 connections",
        "> 2000 connections", "> 2500 connections", "> 3000 connections", "> 3500 connections",
        "> 4000 connections", "> 4500 connections", "> 5000 connections", "> 5500 connections",
        "> 6000 connections", "> 6500 connections", "> 7000 connections", "> 7500 connections",
        "> 8000 connections", "> 8500 connections", "> 9000 connections", "> 9500 connections",
        "> 10000 connections",
        "10000 clients are connected!",
        "< 9500 connections",
        "< 9000 connections",
        "< 8500 connections", "< 8000 connections", "< 7500 connections", "< 7000 connections",
        "< 6500 connections", "< 6000 connections", "< 5500 connections", "< 5000 connections",
        "< 4500 connections", "< 4000 connections", "< 3500 connections", "< 3000 connections",
        "< 2500 connections", "< 2000 connections", "< 1500 connections", "< 1000 connections",
        "< 500 connections", "< 0 connections",
    ]


def test_the_peak_line_is_printed_once_and_only_at_the_number_asked() -> None:
    assert lines_for([150, 199, 150, 199, 0], clients=200, delay=1) == ["< 0 connections"]
    assert lines_for([200, 100, 200, 0], clients=200, delay=1) == ["200 clients are connected!", "< 0 connections"]


def test_a_long_delay_still_steps_by_at_least_one() -> None:
    assert lines_for([1, 2, 1], clients=2, delay=100) == [
        "> 1 connections", "> 2 connections", "2 clients are connected!", "< 1 connections"]
    assert lines_for([3, 0], clients=3, delay=0) == ["> 3 connections", "3 clients are connected!", "< 0 connections"]


def test_a_terminal_gets_a_bar_instead_of_count_lines() -> None:
    out = io.StringIO()
    progress = Progress(1000, 1, out, bar=True)
    for count in (10, 500, 1000, 0):
        progress.update(count)
    progress.close()
    text = out.getvalue()
    assert "connections:" in text and "1000/1000" in text
    assert "1000 clients are connected!" in text
    assert "> " not in text and "< 0 connections" not in text
    assert progress.peak == 1000


def test_latency_summary_is_nearest_rank_in_milliseconds() -> None:
    samples = [i / 1000 for i in range(1, 101)]  # 1 ms ... 100 ms
    assert latency_summary(samples) == pytest.approx({"p50": 50, "p90": 90, "p99": 99, "max": 100})
    assert latency_summary([0.002]) == pytest.approx({"p50": 2, "p90": 2, "p99": 2, "max": 2})
    assert latency_summary([]) == {"p50": None, "p90": None, "p99": None, "max": None}


def test_parse_ws_url() -> None:
    assert parse_ws_url("ws://127.0.0.1:8000/ws/echo/") == WsTarget("ws://127.0.0.1:8000/ws/echo/", "127.0.0.1", 8000)
    assert parse_ws_url("ws://localhost/ws/echo/").port == 80
    for bad in ("http://127.0.0.1/", "wss://127.0.0.1/", "ws:///path", ""):
        with pytest.raises(ValueError, match="is not a ws:// URL"):
            parse_ws_url(bad)
    with pytest.raises(ValueError, match="invalid port"):
        parse_ws_url("ws://127.0.0.1:99999/")


def test_loopback_sockets_spread_over_enough_source_addresses() -> None:
    local = WsTarget("ws://127.0.0.1:8000/", "127.0.0.1", 8000)
    assert source_addresses(local, 200) == ["127.0.0.1"]
    assert source_addresses(local, 15_000) == ["127.0.0.1"]
    assert source_addresses(local, 30_001) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert len(source_addresses(local, 10_000_000)) == 250
    assert source_addresses(WsTarget("ws://192.0.2.1/", "192.0.2.1", 80), 50_000) == [None]
