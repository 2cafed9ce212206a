"""Cross-site WebSocket hijacking, anonymous publishing and flooding: refused before any
subscription (403 with a reason), or closed with 1008."""
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ws4redis_server.conf import get_settings
from ws4redis_server.security import RateLimit
from ws4redis_server.testing import connect


def facility() -> str:
    return "s" + uuid.uuid4().hex[:12]


@pytest.mark.parametrize("origin, allowed", [
    ("http://127.0.0.1:8000", True),
    ("https://localhost", True),
    ("http://LOCALHOST:1234", True),
    ("https://example.com", False),
    ("http://127.0.0.1.example.com", False),
    ("null", False),
    ("file://", False),
    ("ws://127.0.0.1", False),
])
def test_default_origins_are_the_allowed_hosts(origin: str, allowed: bool) -> None:
    with override_settings(ALLOWED_HOSTS=["127.0.0.1", "localhost"], CSRF_TRUSTED_ORIGINS=[]):
        assert get_settings().allowed_origins.allows(origin) is allowed


def test_csrf_trusted_origins_and_explicit_origins() -> None:
    with override_settings(ALLOWED_HOSTS=["api.internal"], CSRF_TRUSTED_ORIGINS=["https://*.example.com", "https://shop.test:8443"]):
        policy = get_settings().allowed_origins
        assert policy.allows("https://www.example.com") and policy.allows("https://shop.test:8443")
        assert not policy.allows("http://www.example.com")  # scheme is part of the origin
        assert not policy.allows("https://shop.test")
        assert policy.allows("http://api.internal:8080")
    with override_settings(WS4REDIS_ALLOWED_ORIGINS=["https://app.example.com"]):
        policy = get_settings().allowed_origins
        assert policy.allows("https://app.example.com") and not policy.allows("http://127.0.0.1")
    with override_settings(WS4REDIS_ALLOWED_ORIGINS=["*"]):
        assert get_settings().allowed_origins.allows("https://anything.test")
    with override_settings(ALLOWED_HOSTS=[], DEBUG=True, CSRF_TRUSTED_ORIGINS=[]):
        assert get_settings().allowed_origins.allows("http://localhost:3000")
    with override_settings(ALLOWED_HOSTS=[], DEBUG=False, CSRF_TRUSTED_ORIGINS=[]):
        assert not get_settings().allowed_origins.allows("http://localhost:3000")


@pytest.mark.parametrize("name, value, message", [
    ("WS4REDIS_ALLOWED_ORIGINS", "https://example.com", "must be a list of origins"),
    ("WS4REDIS_ALLOWED_ORIGINS", ["example.com"], "must look like 'https://example.com"),
    ("WS4REDIS_ALLOWED_ORIGINS", ["https://example.com/path"], "must look like"),
    ("WS4REDIS_ANONYMOUS_PUBLISH", "yes", "True, False or a list of facility names"),
    ("WS4REDIS_RATE_LIMIT", 0, "WS4REDIS_RATE_LIMIT must be a number >= 0.001"),
    ("WS4REDIS_RATE_LIMIT", "10", "WS4REDIS_RATE_LIMIT must be a number"),
    ("WS4REDIS_OUTBOX_MESSAGES", 0, "WS4REDIS_OUTBOX_MESSAGES must be an integer >= 1"),
    ("WS4REDIS_OUTBOX_BYTES", 100, "WS4REDIS_OUTBOX_BYTES must be an integer >= 1024"),
])
def test_bad_security_settings_raise_improperly_configured(name: str, value: object, message: str) -> None:
    with override_settings(**{name: value}):
        with pytest.raises(ImproperlyConfigured, match=message):
            get_settings()


def test_rate_burst_must_be_at_least_one() -> None:
    with override_settings(WS4REDIS_RATE_LIMIT=5, WS4REDIS_RATE_BURST=0.5):
        with pytest.raises(ImproperlyConfigured, match="WS4REDIS_RATE_BURST must be a number >= 1"):
            get_settings()
    with override_settings(WS4REDIS_RATE_LIMIT=5, WS4REDIS_RATE_BURST=20):
        assert (get_settings().rate_limit, get_settings().rate_burst) == (5, 20)
    with override_settings(WS4REDIS_RATE_LIMIT=None):
        assert get_settings().rate_limit is None


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    bucket = RateLimit(rate=0.001, burst=3)  # refills one token in 1000 s: none during this test
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]
    bucket.stamp -= 2000  # as if 2000 s had passed
    assert [bucket.allow() for _ in range(3)] == [True, True, False]


def test_foreign_origin_is_refused_before_any_subscription(stack, redis_server, make_user, login_cookie) -> None:
    name = facility()
    channel = f"user:{make_user(username=f'victim-{name}').username}:{name}"
    session = login_cookie(make_user())
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{stack.ws_url}/ws/{name}?subscribe-user&subscribe-broadcast", session=session,
                origin="https://evil.example")
    response = refused.value.response
    assert response.status_code == 403
    assert b"Origin 'https://evil.example' is not allowed" in response.body
    assert redis_server.client().pubsub_numsub(f"broadcast:{name}", channel) == [
        (f"broadcast:{name}".encode(), 0), (channel.encode(), 0)]
    # The site's own pages, and clients that send no Origin, are served.
    for origin in (stack.http_url, None):
        with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast", origin=origin) as ws:
            redis_server.client().publish(f"broadcast:{name}", "hello")
            assert ws.recv(timeout=10) == "hello"


def test_handler_routes_check_the_origin_too(stack) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{stack.ws_url}/ws/echo/", origin="http://attacker.test")
    assert refused.value.response.status_code == 403


def test_anonymous_sockets_may_not_publish(stack, make_user, login_cookie) -> None:
    name = facility()
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast&publish-broadcast")
    assert refused.value.response.status_code == 403
    assert b"Log in to publish on facility" in refused.value.response.body
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") as reader, \
            connect(f"{stack.ws_url}/ws/{name}?publish-broadcast", session=login_cookie(make_user())) as writer:
        writer.send("signed")
        assert reader.recv(timeout=10) == "signed"


def test_anonymous_publishing_where_the_site_allows_it(stack) -> None:
    # webapp/settings.py: WS4REDIS_ANONYMOUS_PUBLISH = ["demo"] (the pub/sub demo page).
    # The facility persists its last message (WS4REDIS_EXPIRE): a socket gets it first, whatever
    # an earlier test published there; then its own message comes back.
    message = "anonymous " + uuid.uuid4().hex
    with connect(f"{stack.ws_url}/ws/demo?subscribe-broadcast&publish-broadcast&echo") as ws:
        ws.send(message)
        received = [ws.recv(timeout=10)]
        if received[0] != message:
            received.append(ws.recv(timeout=10))
        assert received[-1] == message, received


def test_a_flooding_socket_is_closed_with_1008(stack) -> None:
    # webapp/settings.py: 500 messages per second, bursts of 1000.
    with connect(f"{stack.ws_url}/ws/{facility()}?subscribe-broadcast") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            for number in range(1500):  # sent in far less than the 1 s it takes to earn 500 tokens
                ws.send(f"flood {number}")
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "over 500 messages per second")


@pytest.mark.browser
def test_a_page_of_another_site_cannot_open_a_socket_in_chromium(stack, browser) -> None:
    """Chromium sends the page's Origin: a page served as http://evil.test is refused, the site's
    own page (same script) is served."""
    script = f"""<script>
      const ws = new WebSocket("{stack.ws_url}/ws/echo/");
      ws.onmessage = (e) => {{ document.title = "message:" + e.data; }};
      ws.onclose = (e) => {{ if (!document.title) document.title = "closed:" + e.code; }};
    </script>"""
    page = browser.new_page()
    try:
        page.route("http://evil.test/", lambda route: route.fulfill(status=200, content_type="text/html", body=script))
        page.goto("http://evil.test/")
        page.wait_for_function("document.title !== ''", timeout=10_000)
        assert page.title() == "closed:1006"  # the handshake got 403: the page learns nothing
        page.goto(f"{stack.http_url}/static/ws4redis/ws4redis.js")  # any page of the site
        page.set_content(script)
        page.wait_for_function("document.title !== ''", timeout=10_000)
        assert page.title() == "message:Hello!"
    finally:
        page.close()
