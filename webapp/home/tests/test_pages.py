"""The home page and the pub/sub demo page, whose JS client (ws4redis.js) runs in Chromium."""
import urllib.request
import uuid

import pytest
from playwright.sync_api import expect

from deploy.stack import wait_for
from tests.clients import all_workers, workers_or_none
from ws4redis_server import RedisPublisher
from ws4redis_server.testing import connect


def test_home_page_links_every_demo(stack) -> None:
    with urllib.request.urlopen(f"{stack.http_url}/") as response:
        html = response.read().decode()
    for link in ("/echo/", "/gameoflife/", "/chat/", "/pubsub/", "/admin/broadcast/broadcast/"):
        assert f'href="{link}"' in html


def test_publish_view_validates_input(stack) -> None:
    from django.test import Client

    client = Client()
    assert client.post("/pubsub/publish/", {"message": ""}).status_code == 400
    response = client.post("/pubsub/publish/", {"message": "x" * 1001})
    assert response.status_code == 400 and b"longer than 1000" in response.content
    assert client.get("/pubsub/publish/").status_code == 405


@pytest.mark.browser
def test_js_client_subscribes_publishes_and_reconnects(stack, redis_server, new_page, artifacts_dir) -> None:
    page = new_page()
    page.goto("/pubsub/")
    expect(page.locator("#state")).to_have_text("open", timeout=15_000)
    log = page.locator("#log")
    redis_server.client().publish("broadcast:demo", "from redis " + uuid.uuid4().hex[:6])
    expect(log).to_contain_text("from redis", timeout=10_000)

    page.fill("#message", "typed in the page")
    page.press("#message", "Enter")
    expect(log).to_contain_text("typed in the page", timeout=10_000)  # over the socket, echoed

    page.fill("#message", "posted to django")
    page.click("#via-django")
    expect(log).to_contain_text("[django] posted to django", timeout=10_000)

    # Another socket sees what the page publishes.
    with connect(f"{stack.ws_url}/ws/demo?subscribe-broadcast") as other:
        page.fill("#message", "to the other socket")
        page.press("#message", "Enter")
        received = [other.recv(timeout=10) for _ in range(2)]
        assert "to the other socket" in received

    # A dropped socket reconnects by itself; close() ends it for good.
    page.evaluate("""() => {
        const ws = window.pubsubSocket;
        const report = ws.onstatechange;
        window.states = [];
        ws.onstatechange = (state) => { window.states.push(state); report(state); };
        ws.socket.close();
    }""")
    page.wait_for_function("window.states.includes('reconnecting') && window.states.at(-1) === 'open'",
                           timeout=15_000)
    redis_server.client().publish("broadcast:demo", "after reconnecting")
    expect(log).to_contain_text("after reconnecting", timeout=10_000)
    page.screenshot(path=str(artifacts_dir / "pubsub.png"), full_page=True)
    page.evaluate("window.pubsubSocket.close()")
    expect(page.locator("#state")).to_have_text("closed", timeout=10_000)
    page.wait_for_timeout(1500)
    expect(page.locator("#state")).to_have_text("closed")


@pytest.mark.browser
def test_js_client_replays_what_was_published_while_the_websocket_instance_restarted(
        stack, new_page, artifacts_dir) -> None:
    page = new_page()
    page.goto("/pubsub/")
    expect(page.locator("#state")).to_have_text("open", timeout=15_000)
    publisher = RedisPublisher(facility="demo", broadcast=True)
    tag = uuid.uuid4().hex[:6]
    publisher.publish_message(f"{tag} before", expire=0)
    expect(page.locator("#log")).to_contain_text(f"{tag} before", timeout=10_000)
    page.evaluate("""() => {
        const ws = window.pubsubSocket;
        const closed = ws.onclose;
        window.closeCodes = [];
        ws.onclose = (event) => { window.closeCodes.push(event.code); closed(event); };
    }""")
    assert page.evaluate("window.pubsubSocket.lastId") is not None

    workers = all_workers(stack, "websocket")
    stack.reload("websocket")  # every socket is closed with 1001; the page reconnects by itself
    page.wait_for_function("window.closeCodes.length > 0", timeout=30_000)
    missed = [f"{tag} missed {i}" for i in range(5)]
    for text in missed:  # while the page has no socket
        publisher.publish_message(text, expire=0)
    wait_for(lambda: set(workers_or_none(stack, "websocket") or ()).isdisjoint(workers), 60,
             "new WebSocket workers")
    expect(page.locator("#state")).to_have_text("open", timeout=60_000)
    publisher.publish_message(f"{tag} after", expire=0)
    expect(page.locator("#log")).to_contain_text(f"{tag} after", timeout=10_000)

    lines = [line for line in page.locator("#log > div").all_text_contents() if line.startswith(tag)]
    assert lines == [f"{tag} before", *missed, f"{tag} after"]
    assert page.evaluate("window.closeCodes")[0] == 1001
    page.screenshot(path=str(artifacts_dir / "pubsub-resumed.png"), full_page=True)


@pytest.mark.browser
def test_js_client_reports_a_gap_and_strips_headers_from_binary_messages(stack, new_page) -> None:
    page = new_page()
    page.goto("/pubsub/")
    expect(page.locator("#state")).to_have_text("open", timeout=15_000)
    page.evaluate("""async () => {
        const { WS4Redis } = await import("/static/ws4redis/ws4redis.js");
        window.probe = (facility) => {
            const probe = { gaps: [], received: [], opened: 0 };
            probe.ws = new WS4Redis({
                facility, flags: "subscribe-broadcast",
                onopen: () => { probe.opened += 1; },
                onmessage: (data) => probe.received.push(
                    typeof data === "string" ? data : Array.from(new Uint8Array(data))),
                ongap: (gap) => probe.gaps.push(gap.position),
            });
            return probe;
        };
    }""")
    binary, quiet = ("j" + uuid.uuid4().hex[:10] for _ in range(2))
    page.evaluate("([binary, quiet]) => { window.one = probe(binary); window.two = probe(quiet); }", [binary, quiet])
    page.wait_for_function("window.one.opened === 1 && window.two.opened === 1", timeout=15_000)
    RedisPublisher(facility=binary, broadcast=True).publish_message(b"\x00\xffbinary", expire=0)
    page.wait_for_function("window.one.received.length === 1", timeout=10_000)
    assert page.evaluate("window.one.received") == [[0, 255, *b"binary"]]
    assert page.evaluate("window.one.gaps") == [] and page.evaluate("window.one.ws.lastId") is not None
    # As if it had been away longer than the history window: nothing of its channel is kept.
    page.evaluate("() => { window.two.ws.lastId = '1-0'; window.two.ws.socket.close(); }")
    page.wait_for_function("window.two.gaps.length === 1", timeout=15_000)
    assert page.evaluate("window.two.opened") == 2 and page.evaluate("window.two.received") == []
