"""The pure parts of testecho and its load client: count lines, percentiles, URLs, source addresses."""
from __future__ import annotations

import io

import pytest

from workers.testecho import Progress, check_options, latency_summary
from workers.wsload import WsTarget, endpoint, parse_ws_url, source_addresses


def lines_for(counts: list[int], clients: int = 10_000, delay: float = 60) -> list[str]:
    out = io.StringIO()
    progress = Progress(clients, delay, out, bar=False)
    for count in counts:
        progress.update(count)
    return out.getvalue().splitlines()


def test_count_lines_every_clients_times_3_over_delay() -> None:
    # 10,000 clients, DELAY 60: a line every 500 connections, as in django-c10k-demo.
    assert lines_for([499, 500, 1700, 10_000, 9_999, 9_000, 0]) == [
        "500 connections open",
        "1000 connections open", "1500 connections open",
        *(f"{n} connections open" for n in range(2000, 10_001, 500)),
        "All 10000 clients are connected",
        "9500 connections still open",
        "9000 connections still open",
        *(f"{n} connections still open" for n in range(8500, 499, -500)),
        "All connections closed",
    ]


def test_the_peak_line_is_printed_once_and_only_at_the_number_asked() -> None:
    assert lines_for([150, 199, 150, 199, 0], clients=200, delay=1) == ["All connections closed"]
    assert lines_for([200, 100, 200, 0], clients=200, delay=1) == [
        "All 200 clients are connected", "All connections closed"]


def test_a_long_delay_still_steps_by_at_least_one() -> None:
    assert lines_for([1, 2, 1], clients=2, delay=100) == [
        "1 connection open", "2 connections open", "All 2 clients are connected", "1 connection still open"]
    assert lines_for([3, 0], clients=3, delay=0) == [
        "3 connections open", "All 3 clients are connected", "All connections closed"]


def test_a_terminal_gets_a_bar_instead_of_count_lines() -> None:
    out = io.StringIO()
    progress = Progress(1000, 1, out, bar=True)
    for count in (10, 500, 1000, 0):
        progress.update(count)
    progress.close()
    text = out.getvalue()
    assert "connections:" in text and "1000/1000" in text
    assert "All 1000 clients are connected" in text
    assert "connections open" not in text and "still open" not in text
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


def test_a_site_address_gets_the_endpoint_path() -> None:
    assert endpoint("ws://127.0.0.1:8300", "/ws/echo/") == "ws://127.0.0.1:8300/ws/echo/"
    assert endpoint("ws://127.0.0.1:8300/", "/ws/echo/") == "ws://127.0.0.1:8300/ws/echo/"
    assert endpoint("ws://127.0.0.1:8300/ws/echo", "/ws/echo/") == "ws://127.0.0.1:8300/ws/echo/"
    assert endpoint("ws://h/other/", "/ws/echo/") == "ws://h/other/"
    assert check_options("ws://127.0.0.1:8300", 1, 0) == WsTarget("ws://127.0.0.1:8300/ws/echo/", "127.0.0.1", 8300)
    # The error names what was typed, with examples of both forms.
    with pytest.raises(ValueError, match=r"'http://127.0.0.1:8300' is not a ws:// URL \(expected e.g. "
                                         r"ws://127.0.0.1:8000 or ws://127.0.0.1:8000/ws/echo/\)"):
        check_options("http://127.0.0.1:8300", 1, 0)


def test_loopback_sockets_spread_over_enough_source_addresses() -> None:
    local = WsTarget("ws://127.0.0.1:8000/", "127.0.0.1", 8000)
    assert source_addresses(local, 200) == ["127.0.0.1"]
    assert source_addresses(local, 15_000) == ["127.0.0.1"]
    assert source_addresses(local, 30_001) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert len(source_addresses(local, 10_000_000)) == 250
    assert source_addresses(WsTarget("ws://192.0.2.1/", "192.0.2.1", 80), 50_000) == [None]


def test_a_client_whose_connection_ended_sends_and_closes_without_error() -> None:
    """websockets saw the end of the stream (its state CLOSED) before the transport reported the
    connection lost: a send() or close() then (testecho's, the benchmark's) does nothing instead of
    raising InvalidState. Then the same once the server's close has been answered."""
    import asyncio

    from websockets.asyncio.server import serve

    from workers.wsload import open_client

    async def scenario() -> None:
        async def going_away(ws) -> None:  # noqa: ANN001
            await asyncio.sleep(0.2)
            await ws.close(1001, "bye")

        async with serve(going_away, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            client = await open_client(parse_ws_url(f"ws://127.0.0.1:{port}/"), None, 10, None)
            client.protocol.receive_eof()  # what data_received does on EOF, before connection_lost
            assert not client.closed.done()
            client.send("too late")
            await client.close(timeout=1)
            other = await open_client(parse_ws_url(f"ws://127.0.0.1:{port}/"), None, 10, None)
            await asyncio.wait_for(asyncio.shield(other.closed), 10)
            assert other.close_code == 1001
            other.send("too late")
            await other.close(timeout=5)

    asyncio.run(scenario())
