"""The home page and the pub/sub demo page, whose JS client (ws4redis.js) runs in Chromium."""
import uuid
import urllib.request

import pytest
from playwright.sync_api import expect

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
