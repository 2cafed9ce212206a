"""The loop's figures: every WebSocket worker reports to Redis, Django shows the sum (JSON, a
live page) and every worker's series (Prometheus)."""
import json
import urllib.request
import uuid

import pytest
from websockets.exceptions import ConnectionClosed

from deploy.stack import wait_for
from ws4redis_server.testing import connect

WORKERS = 3  # WS_WORKERS of the stack fixture


def figures(stack) -> dict:  # noqa: ANN001
    with urllib.request.urlopen(f"{stack.http_url}/ws-stats/json", timeout=10) as response:
        return json.load(response)


def test_workers_report_sockets_and_messages(stack, redis_server) -> None:
    wait_for(lambda: len(figures(stack)["workers"]) == WORKERS, 10, "every worker's report")
    before = figures(stack)["totals"]
    name = "m" + uuid.uuid4().hex[:8]
    sockets = [connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") for _ in range(6)]
    try:
        for _ in range(5):
            redis_server.client().publish(f"broadcast:{name}", "figure")
        for ws in sockets:
            assert [ws.recv(timeout=10) for _ in range(5)] == ["figure"] * 5
        # Sockets of earlier tests may still be closing: compare with what only grows.
        wait_for(lambda: figures(stack)["totals"]["sockets_accepted"] >= before["sockets_accepted"] + 6, 10,
                 "six more sockets accepted")
        wait_for(lambda: figures(stack)["totals"]["messages_sent"] >= before["messages_sent"] + 30, 10,
                 "thirty more messages sent")
        open_now = figures(stack)["totals"]["sockets_open"]
        assert open_now >= 6
    finally:
        for ws in sockets:
            ws.close()
    wait_for(lambda: figures(stack)["totals"]["sockets_open"] <= open_now - 6, 10, "the sockets closed")
    assert all(worker["redis_connected"] == 1 for worker in figures(stack)["workers"].values())


def test_a_rate_limited_close_is_counted(stack) -> None:
    wait_for(lambda: len(figures(stack)["workers"]) == WORKERS, 10, "every worker's report")
    before = figures(stack)["totals"]["closed_rate_limit"]
    with connect(f"{stack.ws_url}/ws/{uuid.uuid4().hex[:8]}?subscribe-broadcast") as ws:
        with pytest.raises(ConnectionClosed):
            for number in range(1500):
                ws.send(str(number))
            ws.recv(timeout=10)
    wait_for(lambda: figures(stack)["totals"]["closed_rate_limit"] == before + 1, 10, "the close counted")


def test_prometheus_endpoint_has_one_series_per_worker(stack) -> None:
    wait_for(lambda: len(figures(stack)["workers"]) == WORKERS, 10, "every worker's report")
    with urllib.request.urlopen(f"{stack.http_url}/ws-stats/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    assert "# TYPE ws4redis_sockets_open gauge" in text
    assert "ws4redis_messages_sent_total counter" in text  # the TYPE line (its name varies by version)
    for series in ("ws4redis_sockets_open{", "ws4redis_messages_sent_total{", "ws4redis_reconnects_total{",
                   "ws4redis_closed_slow_consumer_total{", "ws4redis_outbox_high_water{"):
        assert text.count(series) == WORKERS, series


@pytest.mark.browser
def test_live_stats_page_is_linked_from_home_and_updates(stack, new_page) -> None:
    page = new_page()
    page.goto("/")
    page.get_by_role("link", name="WebSocket figures").click()
    page.wait_for_function("document.getElementById('stats-status').textContent.includes('workers, updated')",
                           timeout=10_000)
    assert page.locator("#stats-workers li").count() == WORKERS
    assert page.locator("tr[data-name='sockets_open'] .total").text_content() != "–"
