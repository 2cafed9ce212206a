"""``{% ws4redis_config %}`` and the context processor: what templates give the JavaScript client,
never the text ``None``."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from django.template import Context, RequestContext, Template
from django.test import RequestFactory, override_settings

from ws4redis_server.context_processors import default


@pytest.fixture(autouse=True)
def _hosts() -> Iterator[None]:
    with override_settings(ALLOWED_HOSTS=["example.com"]):
        yield


CONFIG = re.compile(r'^<script id="ws4redis-config" type="application/json">(.*)</script>$', re.S)


def render(source: str, request=None) -> str:
    context = RequestContext(request) if request is not None else Context()
    if request is not None:
        context["request"] = request  # as django.template.context_processors.request
    return Template(source).render(context)


def config_of(html: str) -> dict:
    match = CONFIG.match(html.strip())
    assert match, html
    return json.loads(match.group(1))


def test_config_with_a_request_and_no_heartbeat() -> None:
    request = RequestFactory().get("/", HTTP_HOST="example.com:8000")
    html = render("{% load ws4redis %}{% ws4redis_config %}", request)
    assert config_of(html) == {"uri": "ws://example.com:8000/ws/", "url": "/ws/", "heartbeat": None}
    assert "None" not in html


def test_config_of_a_secure_request_with_a_heartbeat() -> None:
    request = RequestFactory().get("/", secure=True, HTTP_HOST="example.com")
    with override_settings(WS4REDIS_HEARTBEAT="--heartbeat--", WEBSOCKET_URL="/sockets/"):
        html = render("{% load ws4redis %}{% ws4redis_config %}", request)
    assert config_of(html) == {"uri": "wss://example.com/sockets/", "url": "/sockets/", "heartbeat": "--heartbeat--"}


def test_config_without_a_request_leaves_the_uri_to_the_browser() -> None:
    html = render("{% load ws4redis %}{% ws4redis_config %}")
    assert config_of(html) == {"uri": None, "url": "/ws/", "heartbeat": None}


def test_config_cannot_end_its_script() -> None:
    with override_settings(WS4REDIS_HEARTBEAT="</script><b>&"):
        html = render("{% load ws4redis %}{% ws4redis_config %}")
    assert html.count("</script>") == 1 and "<b>" not in html
    assert config_of(html)["heartbeat"] == "</script><b>&"


def test_context_processor_gives_javascript_literals_as_ws4redis_0_6_0() -> None:
    request = RequestFactory().get("/", HTTP_HOST="example.com")
    context = default(request)
    assert context["WEBSOCKET_URI"] == "ws://example.com/ws/"
    assert str(context["WS4REDIS_HEARTBEAT"]) == "null"
    with override_settings(WS4REDIS_HEARTBEAT="--heartbeat--"):
        secure = default(RequestFactory().get("/", secure=True, HTTP_HOST="example.com"))
    assert secure["WEBSOCKET_URI"] == "wss://example.com/ws/"
    assert str(secure["WS4REDIS_HEARTBEAT"]) == '"--heartbeat--"'


def test_context_processor_literals_render_unescaped_in_templates() -> None:
    request = RequestFactory().get("/", HTTP_HOST="example.com")
    source = "heartbeat_msg: {{ WS4REDIS_HEARTBEAT }}, uri: '{{ WEBSOCKET_URI }}'"
    assert Template(source).render(RequestContext(request)) == "heartbeat_msg: null, uri: 'ws://example.com/ws/'"
    with override_settings(WS4REDIS_HEARTBEAT='--"heart"</script>--'):
        rendered = Template("{{ WS4REDIS_HEARTBEAT }}").render(RequestContext(request))
    assert rendered == '"--\\"heart\\"\\u003C/script\\u003E--"'
    assert json.loads(rendered) == '--"heart"</script>--'
