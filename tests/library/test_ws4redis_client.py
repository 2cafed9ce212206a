"""django-websocket-redis 0.6.0's documented browser client, unchanged, against this server in
Chromium: its template snippet (tests/library/templates/ws4redis-0.6-usage.html, verbatim from
ws4redis's docs/usage.rst) rendered with ``ws4redis_server.context_processors.default``, its
``ws4redis.js`` (0.6.0) and jQuery 3 (tests/library/fixtures/ws4redis-0.6/).

The page is observed, not changed: an init script wraps ``window.alert`` (the snippet's callbacks
alert; the real dialog still opens and is accepted) and ``WebSocket`` (to record what each socket
sends and receives). ws4redis.js sends its heartbeat every 5 s and closes the socket once more
than 3 in a row go unanswered; the page's clock is Playwright's, so the test moves it on interval
by interval and waits for each answer, instead of sleeping through 30 s.
"""
from __future__ import annotations

import contextlib
import json
import os
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from ws4redis_server import RedisMessage, RedisPublisher, wire
from ws4redis_server.testing import LiveServer, login_cookie

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="playwright is not installed here (pip install playwright, as requirements/test.txt): "
           "ws4redis 0.6.0's jQuery client is tested in Chromium through it")

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("redis_server")]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PAGE = "/ws4redis-0.6/usage/"
CHANNEL = "broadcast:foobar"  # the snippet's uri: foobar?subscribe-broadcast&publish-broadcast&echo
HEARTBEAT = "--heartbeat--"
INTERVAL_MS = 5000  # ws4redis.js: setInterval(send_heartbeat, 5000)
MOST_MISSED = 3  # ws4redis.js: closes when missed_heartbeats > 3
DEADLINE_MS = 20_000

SPY = """
(() => {
  const spy = window.__spy = { alerts: [], sockets: [] };
  const instances = window.__spyInstances = [];
  const nativeAlert = window.alert;
  window.alert = function (message) {
    spy.alerts.push(String(message));
    return nativeAlert.call(window, message);
  };
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args) {
      super(...args);
      const record = { url: this.url, sent: [], received: [], opened: false, closed: null };
      this.__record = record;
      spy.sockets.push(record);
      instances.push(this);
      this.addEventListener("open", () => { record.opened = true; });
      this.addEventListener("message", (event) => { record.received.push(event.data); });
      this.addEventListener("close", (event) => { record.closed = { code: event.code, reason: event.reason }; });
    }
    send(data) {
      this.__record.sent.push(data);
      return super.send(data);
    }
  };
})();
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Tab:
    """A Chromium page of ``server`` with the spy, recording page errors, console errors and
    warnings, and the dialogs it opened (each accepted)."""

    def __init__(self, page: Any, server: LiveServer) -> None:
        self.page = page
        self.server = server
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)
        page.add_init_script(SPY)

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"console.{message.type}: {message.text}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.accept()

    def open(self) -> None:
        self.page.goto(self.server.http_url + PAGE)

    def seen(self) -> dict[str, Any]:
        """What the page saw: the spy's record, each socket's readyState now, the dialogs that
        opened and the errors."""
        seen = self.page.evaluate(
            "() => ({...window.__spy, readyStates: window.__spyInstances.map((ws) => ws.readyState)})")
        return {**seen, "dialogs": list(self.dialogs), "errors": list(self.errors)}

    def wait(self, condition: str, what: str, arg: Any = None) -> None:
        """Waits until the JavaScript ``condition(spy, arg)`` is true, at most DEADLINE_MS."""
        try:
            self.page.wait_for_function(f"(arg) => window.__spy && ({condition})(window.__spy, arg)",
                                        arg=arg, timeout=DEADLINE_MS, polling=50)
        except sync_api.TimeoutError:
            raise AssertionError(f"no {what} within {DEADLINE_MS / 1000:g}s: the page saw "
                                 f"{json.dumps(self.seen())[:3000]}") from None

    def wait_for_alert(self, text: str) -> None:
        self.wait("(spy, text) => spy.alerts.includes(text)", f"alert {text!r}", text)


def in_chromium(server: LiveServer, scenario: Callable[[Tab], Any], session: str | None = None) -> Any:
    """Runs ``scenario`` on a fresh Chromium page of ``server`` (logged in with ``session`` if
    given) and returns what it returns. Playwright's sync API runs an event loop of its own: it
    gets a thread of its own."""
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM)"

    def drive() -> Any:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                context = browser.new_context()
                if session is not None:
                    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session,
                                          "url": server.http_url}])
                tab = Tab(context.new_page(), server)
                tab.page.clock.install()  # time flows as usual until the scenario pauses it
                return scenario(tab)
            finally:
                browser.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(drive).result(timeout=180)


def rendered_page(server: LiveServer) -> str:
    with urllib.request.urlopen(server.http_url + PAGE, timeout=10) as response:
        return response.read().decode()  # type: ignore[no-any-return]


def snippet_uri(server: LiveServer) -> str:
    return f"{server.ws_url}/ws/foobar?subscribe-broadcast&publish-broadcast&echo"


def use_the_page(tab: Tab, heartbeats: bool) -> dict[str, Any]:
    """The documented page in use. Loaded, it connects and gets the channel's persisted message;
    the snippet's on_connected sends 'Hello' with ws4redis.send_message and gets it back (echo);
    a message published from Django arrives; then MOST_MISSED + 3 heartbeat intervals pass on the
    page's clock, each heartbeat (if any) answered before the next interval. Returns what the
    page saw, with the two messages published from Django."""
    publisher = RedisPublisher(facility="foobar", broadcast=True)
    persisted = unique("persisted before the page")
    publisher.publish_message(RedisMessage(persisted))
    tab.open()
    tab.wait_for_alert(f"Message from Websocket: {persisted}")  # ws4redis's replay on connect
    tab.wait_for_alert("Message from Websocket: Hello")
    live = unique("from Django")
    publisher.publish_message(RedisMessage(live))
    tab.wait_for_alert(f"Message from Websocket: {live}")

    tab.page.clock.pause_at(tab.page.evaluate("() => Date.now()") + 100)
    for interval in range(1, MOST_MISSED + 4):
        tab.page.clock.run_for(INTERVAL_MS)
        if heartbeats:
            tab.wait("(spy, beat) => { const count = (list) => list.filter((data) => data === beat).length;"
                     " const socket = spy.sockets[spy.sockets.length - 1];"
                     " return count(socket.sent) >= 1 && count(socket.received) >= count(socket.sent); }",
                     f"answer to the heartbeat of interval {interval}", HEARTBEAT)
    return {**tab.seen(), "persisted": persisted, "live": live}


@contextlib.contextmanager
def live_server(**overrides: Any) -> Iterator[LiveServer]:
    with LiveServer(settings=overrides) as server:
        yield server


@pytest.fixture(autouse=True)
def forget_foobar(redis_server: Any) -> Iterator[None]:
    """No persisted message on the snippet's channel before and after each test."""
    client = redis_server.client()
    keys = (CHANNEL, wire.binary_marker_key("", CHANNEL))
    client.delete(*keys)
    yield
    client.delete(*keys)


@pytest.fixture
def user() -> Iterator[Any]:
    user = User.objects.create_user(unique("ann"))
    yield user
    user.delete()


def assert_used_as_documented(seen: dict[str, Any], uri: str) -> None:
    """One socket, never closed, that received the persisted message, the echo of 'Hello' and
    the live message (and, maybe, heartbeats), each passed to receive_message once."""
    assert seen["errors"] == []
    messages = [f"Message from Websocket: {text}" for text in (seen["persisted"], "Hello", seen["live"])]
    assert seen["dialogs"] == seen["alerts"] == ["Websocket is connecting...", *messages]
    (socket,) = seen["sockets"]
    assert socket["url"] == uri
    assert socket["opened"] and socket["closed"] is None and seen["readyStates"] == [1]
    assert [data for data in socket["received"] if data != HEARTBEAT] == [seen["persisted"], "Hello", seen["live"]]


# -- the tests ---------------------------------------------------------------------------------------

def test_the_documented_page_with_a_heartbeat(user: Any, redis_server: Any) -> None:
    """WS4REDIS_HEARTBEAT set, the browser logged in (publish-broadcast needs a user here). A
    plain redis-py subscriber of the channel (as a ws4redis server) reads the page's 'Hello' as
    published, and no heartbeat."""
    client = redis_server.client()
    with live_server(WS4REDIS_HEARTBEAT=HEARTBEAT) as server, client.pubsub() as plain:
        plain.subscribe(CHANNEL)
        assert plain.get_message(timeout=10)["type"] == "subscribe"
        html = rendered_page(server)
        assert f"uri: '{snippet_uri(server)}',\n" in html
        assert '        heartbeat_msg: "--heartbeat--"\n' in html
        seen = in_chromium(server, lambda tab: use_the_page(tab, heartbeats=True), session=login_cookie(user))
        assert_used_as_documented(seen, snippet_uri(server))
        client.publish(CHANNEL, "-- marker --")
        on_redis = []
        while (message := plain.get_message(timeout=10)) is not None and message["data"] != b"-- marker --":
            on_redis.append(message["data"])
    assert on_redis == [seen["persisted"].encode(), b"Hello", seen["live"].encode()]
    sent = seen["sockets"][0]["sent"]
    # 'Hello', then a heartbeat per interval: more of them than ws4redis.js lets go unanswered
    # (it closes at the (MOST_MISSED + 1)th), and the socket is still the first one, open.
    assert sent[0] == "Hello" and set(sent[1:]) == {HEARTBEAT} and len(sent) - 1 >= MOST_MISSED + 3


def test_the_documented_page_without_a_heartbeat() -> None:
    """WS4REDIS_HEARTBEAT unset: the line renders ``heartbeat_msg: null``, still valid
    JavaScript, and ws4redis.js sends no heartbeat. Anonymous here, with
    WS4REDIS_ANONYMOUS_PUBLISH (ws4redis let anonymous sockets publish; this server asks for it)."""
    with live_server(WS4REDIS_ANONYMOUS_PUBLISH=True) as server:
        html = rendered_page(server)
        assert "        heartbeat_msg: null\n" in html
        seen = in_chromium(server, lambda tab: use_the_page(tab, heartbeats=False))
        assert_used_as_documented(seen, snippet_uri(server))
    assert seen["sockets"][0]["sent"] == ["Hello"]
    assert HEARTBEAT not in seen["sockets"][0]["received"]


def test_an_anonymous_page_may_not_publish_by_default() -> None:
    """The deliberate difference of docs/migrating-from-ws4redis.md: without a logged-in user or
    WS4REDIS_ANONYMOUS_PUBLISH, the snippet's publish-broadcast socket is refused (403), and
    ws4redis.js says so through its disconnected callback."""
    def refused(tab: Tab) -> dict[str, Any]:
        tab.open()
        tab.wait("(spy) => spy.sockets.length >= 1 && spy.sockets[0].closed !== null", "close of the socket")
        tab.wait_for_alert('Websocket was disconnected: {"isTrusted":true}')
        return tab.seen()

    with live_server() as server:
        seen = in_chromium(server, refused)
    assert not any(socket["opened"] for socket in seen["sockets"])
    assert seen["sockets"][0]["closed"]["code"] == 1006
    assert seen["dialogs"][:2] == ["Websocket is connecting...", 'Websocket was disconnected: {"isTrusted":true}']
    assert any("403" in error for error in seen["errors"]), seen["errors"]
