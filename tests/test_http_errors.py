"""Bad handshakes get an HTTP status with a reason, never a 500 or a silent close."""
import http.client
import io

import pytest
from django.core.exceptions import PermissionDenied
from django.test import override_settings

from ws4redis_server.conf import get_settings
from ws4redis_server.handshake import HandshakeError, plan_socket

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": KEY}


def request(stack, path: str, headers: dict, method: str = "GET") -> tuple[int, str]:  # noqa: ANN001
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    return response.status, body


@pytest.mark.parametrize("headers, status, reason", [
    ({}, 426, "expects a WebSocket upgrade"),
    ({**UPGRADE, "Sec-WebSocket-Key": "short"}, 400, "Sec-WebSocket-Key must be 16 bytes"),
    ({k: v for k, v in UPGRADE.items() if k != "Sec-WebSocket-Key"}, 400, "Sec-WebSocket-Key"),
    ({**UPGRADE, "Sec-WebSocket-Version": "8"}, 400, "Sec-WebSocket-Version must be 13"),
])
def test_plain_or_broken_handshakes_through_nginx(stack, headers: dict, status: int, reason: str) -> None:
    for path in ("/ws/foobar?subscribe-broadcast", "/ws/echo/"):
        got, body = request(stack, path, headers)
        assert (got, reason in body) == (status, True), (path, got, body)


def test_post_to_a_socket_url_is_405(stack) -> None:
    assert request(stack, "/ws/foobar", UPGRADE, method="POST")[0] == 405


def environ(path: str, query: str = "") -> dict:
    return {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80", "wsgi.input": io.BytesIO(b""), "HTTP_UPGRADE": "websocket", "HTTP_CONNECTION": "Upgrade",
        "HTTP_SEC_WEBSOCKET_VERSION": "13", "HTTP_SEC_WEBSOCKET_KEY": KEY,
    }


def refuse(request, flags):  # noqa: ANN001, ANN201
    raise PermissionDenied("not on this facility")


def only_listen(request, flags):  # noqa: ANN001, ANN201
    assert request.ws4redis_facility == "news"
    return [flag for flag in flags if flag.startswith("subscribe-")]


def test_allowed_channels_hook_refusing_gives_403() -> None:
    with override_settings(WS4REDIS_ALLOWED_CHANNELS="tests.test_http_errors.refuse"):
        with pytest.raises(HandshakeError) as refused:
            plan_socket(environ("/ws/news", "subscribe-broadcast"), get_settings())
    assert (refused.value.status, refused.value.reason) == (403, "not on this facility")


def test_allowed_channels_hook_filters_flags() -> None:
    with override_settings(WS4REDIS_ALLOWED_CHANNELS=only_listen):
        plan = plan_socket(environ("/ws/news", "subscribe-broadcast&publish-broadcast"), get_settings())
    assert (plan.subscribe, plan.publish) == (["broadcast:news"], [])


def test_process_request_hook_can_refuse_and_identify() -> None:
    def jwt_like(request):  # noqa: ANN001, ANN202
        if request.GET.get("token") != "good":
            raise PermissionDenied("bad token")
        request.session = None

        class User:
            is_authenticated = True
            groups = None

            def get_username(self) -> str:
                return "tokenuser"

        request.user = User()

    with override_settings(WS4REDIS_PROCESS_REQUEST=jwt_like):
        with pytest.raises(HandshakeError) as refused:
            plan_socket(environ("/ws/news", "token=bad&subscribe-user"), get_settings())
        assert refused.value.status == 403
        plan = plan_socket(environ("/ws/news", "token=good&subscribe-user"), get_settings())
    assert plan.subscribe == ["user:tokenuser:news"]


def test_unknown_path_outside_websocket_url_is_404() -> None:
    with pytest.raises(HandshakeError) as refused:
        plan_socket(environ("/elsewhere/"), get_settings())
    assert refused.value.status == 404
