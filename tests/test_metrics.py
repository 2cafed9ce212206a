"""The loop's figures: every WebSocket worker reports to Redis, Django shows the sum (JSON, a
live page) and every worker's series (Prometheus)."""
import json
import re
import time
import urllib.request
import uuid

import pytest
from websockets.exceptions import ConnectionClosed

from deploy.stack import ROOT, wait_for
from ws4redis_server.metrics import GAUGES, HELP
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
        # Each worker reports on its own clock: the sends may be in while a socket count is not yet.
        wait_for(lambda: figures(stack)["totals"]["sockets_open"] >= 6, 10, "six sockets reported open")
        open_now = figures(stack)["totals"]["sockets_open"]
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


def test_the_grafana_dashboard_asks_for_series_the_endpoint_exports(stack) -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    asked = set(re.findall(r"ws4redis_\w+", " ".join(queries)))
    exported = {f"ws4redis_{name}" if name in GAUGES else f"ws4redis_{name}_total" for name in HELP}
    assert asked <= exported, asked - exported
    assert {"ws4redis_sockets_open", "ws4redis_deliveries_total", "ws4redis_reconnects_total"} <= asked
    wait_for(lambda: len(figures(stack)["workers"]) == WORKERS, 10, "every worker's report")
    with urllib.request.urlopen(f"{stack.http_url}/ws-stats/metrics", timeout=10) as response:
        text = response.read().decode()
    assert all(f"\n{name}{{" in text for name in asked)
    assert all(panel["datasource"]["uid"] == "${datasource}" for panel in dashboard["panels"])


# The newest value drawn by a chart of the figures page, line ``line`` (1: the first).
LAST = "(chart, line) => ws4redisFigures.charts[chart].data[line].at(-1)"


@pytest.mark.browser
def test_the_charts_move_as_sockets_open_and_messages_flow(stack, new_page, redis_server, artifacts_dir) -> None:
    page = new_page()
    page.goto("/ws-stats/")
    page.wait_for_function("() => window.ws4redisFigures?.charts.sockets?.data[0].length >= 2", timeout=15_000)
    before = page.evaluate(f"({LAST})('sockets', 1)")
    name = "c" + uuid.uuid4().hex[:8]
    sockets = [connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") for _ in range(12)]
    try:
        page.wait_for_function(f"() => ({LAST})('sockets', 1) >= {before + 12}", timeout=20_000)
        # Messages while the page polls, until the deliveries chart shows them (bounded).
        deadline = time.monotonic() + 20
        while not page.evaluate(f"({LAST})('deliveries', 1) > 0"):
            assert time.monotonic() < deadline, "no deliveries drawn within 20 s"
            for _ in range(5):
                redis_server.client().publish(f"broadcast:{name}", "tick")
            page.wait_for_timeout(100)  # the page's own polling goes on meanwhile
        # Each worker has a line of its own in the per-worker charts, and they add up.
        assert page.evaluate("ws4redisFigures.charts['worker-sockets'].series.length") == 1 + WORKERS
        assert page.evaluate("""() => {
          const data = ws4redisFigures.charts['worker-sockets'].data;
          return data.slice(1).reduce((sum, line) => sum + (line.at(-1) ?? 0), 0);
        }""") == page.evaluate(f"({LAST})('sockets', 1)")
        page.screenshot(path=str(artifacts_dir / "ws-stats.png"), full_page=True)
    finally:
        for ws in sockets:
            ws.close()
    page.wait_for_function(f"() => ({LAST})('sockets', 1) <= {before}", timeout=20_000)
    assert "updated_ms" not in figures(stack)["totals"]
