"""Small things every visitor meets: the site's icon, the pub/sub page's text."""
from __future__ import annotations

import urllib.request

import pytest
from django.test import Client

ICO = b"\x00\x00\x01\x00"  # an icon file's first bytes


def test_nginx_serves_the_icon_browsers_ask_for(stack) -> None:
    with urllib.request.urlopen(f"{stack.http_url}/favicon.ico", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/x-icon"
        assert response.read().startswith(ICO)


def test_django_sends_favicon_requests_to_the_static_icon_and_pages_link_it() -> None:
    client = Client()
    response = client.get("/favicon.ico")
    assert (response.status_code, response["Location"]) == (301, "/static/favicon.ico")
    page = client.get("/").content.decode()
    assert '<link rel="icon" href="/static/favicon.ico" sizes="48x48">' in page
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page


# True if the message box shows its whole placeholder.
PLACEHOLDER_FITS = """() => {
  const input = document.getElementById('message');
  const style = getComputedStyle(input);
  const context = document.createElement('canvas').getContext('2d');
  context.font = style.font;
  const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return context.measureText(input.placeholder).width <= room;
}"""


@pytest.mark.browser
@pytest.mark.parametrize("width", [1100, 420])
def test_the_pubsub_page_explains_itself_and_its_placeholder_fits(new_page, artifacts_dir, width) -> None:
    page = new_page()
    page.set_viewport_size({"width": width, "height": 800})
    page.goto("/pubsub/")
    page.wait_for_function("() => document.getElementById('state').textContent === 'open'", timeout=10_000)
    text = page.locator("main").inner_text()
    assert "Send over WebSocket publishes your text from the browser" in text
    assert 'RedisPublisher(facility="demo", broadcast=True)' in text
    assert page.evaluate(PLACEHOLDER_FITS)
    page.screenshot(path=str(artifacts_dir / f"pubsub-{width}.png"), full_page=True)
