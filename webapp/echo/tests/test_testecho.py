"""``manage.py testecho``: end to end through nginx, option errors, a server that is down, and
how failures are told apart (against small real WebSocket servers that misbehave on purpose)."""
from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from websockets.sync.server import Server, ServerConnection, serve

from deploy.stack import free_port
from workers.testecho import TRANSCRIPT


def run_command(**options: object) -> str:
    out = io.StringIO()
    call_command("testecho", stdout=out, no_progress=True, **options)
    return out.getvalue()


@pytest.mark.slow
def test_200_clients_through_nginx(stack, tmp_path: Path) -> None:
    report_file = tmp_path / "echo.json"
    output = run_command(clients=200, delay=1, processes=2, url=f"{stack.ws_url}/ws/echo/", json=str(report_file))

    lines = output.splitlines()
    assert "All 200 clients are connected" in lines
    assert lines.index("All 200 clients are connected") < lines.index("All connections closed")
    report = json.loads(report_file.read_text())
    assert report["ok"] is True
    assert report["completed"] == report["clients"] == report["peak_connections"] == 200
    assert report["processes"] == 2
    assert report["failures"] == {"refused": 0, "timed out": 0, "wrong reply": 0, "dropped": 0}
    assert report["replies"] == 600
    rtt = report["rtt_ms"]
    assert 0 < rtt["p50"] <= rtt["p90"] <= rtt["p99"] <= rtt["max"]
    assert "Summary: 200 of 200 clients saw the exact transcript" in output
    assert "peak concurrent connections: 200" in output


@pytest.mark.parametrize("options, message", [
    ({"clients": 0}, "--clients must be at least 1 (got 0)"),
    ({"clients": -5}, "--clients must be at least 1"),
    ({"delay": -1}, "--delay must be a number of seconds >= 0"),
    ({"timeout": 0}, "--timeout must be positive"),
    ({"processes": 0}, "--processes must be at least 1"),
    ({"url": "http://127.0.0.1:8000/ws/echo/"}, "is not a ws:// URL"),
    ({"url": "wss://127.0.0.1:8000/ws/echo/"}, "is not a ws:// URL"),
    ({"url": "127.0.0.1:8000"}, "is not a ws:// URL"),
    ({"url": "ws://no-such-host.invalid/ws/echo/"}, "cannot resolve the host"),
])
def test_bad_options_are_command_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        run_command(**{"clients": 10, **options})


def test_server_down_is_one_clear_message(capfd: pytest.CaptureFixture[str]) -> None:
    url = f"ws://127.0.0.1:{free_port()}/ws/echo/"
    with pytest.raises(CommandError) as error:
        run_command(clients=100, delay=0, url=url)
    assert str(error.value) == (f"The echo server is unavailable: cannot connect to {url}: Connection refused. "
                                "Is the site running? (start it with `make run`, or give its address with --url)")
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("name, problem", [
    ("no/such/dir/echo.json", "no such directory"),
    (".", "is a directory"),
])
def test_a_bad_json_path_is_refused_before_the_run(tmp_path: Path, name: str, problem: str) -> None:
    # No server at the URL: the path is checked first, or the error would be about the server.
    with pytest.raises(CommandError, match=f"--json .*: {problem}"):
        run_command(clients=10, delay=0, url=f"ws://127.0.0.1:{free_port()}", json=str(tmp_path / name))


def test_a_url_without_the_echo_handler_is_refused(stack) -> None:
    with pytest.raises(CommandError, match=r"refused the WebSocket \(handshake rejected: HTTP 404"):
        run_command(clients=5, delay=0, url=f"{stack.ws_url}/no-such-page/")
    with pytest.raises(CommandError, match="no greeting from .* within 1 s"):
        run_command(clients=5, delay=0, timeout=1, url=f"{stack.ws_url}/ws/quiet?subscribe-broadcast")


# -- failure kinds, against real servers that misbehave --------------------------------------------

def _wrong_reply(ws: ServerConnection) -> None:
    ws.send(TRANSCRIPT[0])
    ws.send(f"1. {str(ws.recv()).upper()}")


def _drop_after_hello(ws: ServerConnection) -> None:
    ws.send(TRANSCRIPT[0])
    ws.recv()
    ws.socket.close()  # no closing handshake: the client sees the connection end


def _silent_after_hello(ws: ServerConnection) -> None:
    ws.send(TRANSCRIPT[0])
    ws.recv()
    ws.recv(timeout=5)


def _echo_server(handler: Callable[[ServerConnection], None]) -> Iterator[str]:
    server: Server = serve(handler, "127.0.0.1", 0, compression=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/ws/echo/"
    finally:
        server.shutdown()
        thread.join(10)


@pytest.mark.parametrize("handler, kind, example", [
    (_wrong_reply, "wrong reply", "expected '1. Spam?', got '1. SPAM?'"),
    (_drop_after_hello, "dropped", "while waiting for '1. Spam?'"),
    (_silent_after_hello, "timed out", "no '1. Spam?' within 1 s"),
])
def test_failures_are_counted_by_kind(handler: Callable[[ServerConnection], None], kind: str, example: str,
                                      tmp_path: Path) -> None:
    report_file = tmp_path / "echo.json"
    for url in _echo_server(handler):
        with pytest.raises(CommandError, match="5 of 5 clients did not see the exact transcript") as error:
            run_command(clients=5, delay=0, timeout=1, url=url, json=str(report_file))
        assert error.value.returncode == 1
    report = json.loads(report_file.read_text())
    assert report["ok"] is False and report["completed"] == 0
    assert report["failures"][kind] == 5
    assert sum(report["failures"].values()) == 5
    assert example in report["failure_examples"][kind]


def test_refused_clients_are_counted_when_the_server_goes_away(tmp_path: Path) -> None:
    """The check before the run is served, and stops the server: every client is then refused."""
    report_file = tmp_path / "echo.json"

    def greet_once_then_stop(ws: ServerConnection) -> None:
        threading.Thread(target=server.shutdown, kwargs={"close_connections": False}).start()
        server.socket_closed.wait(10)
        ws.send(TRANSCRIPT[0])

    server: Server = serve(greet_once_then_stop, "127.0.0.1", 0, compression=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}/ws/echo/"
    with pytest.raises(CommandError, match="3 of 3 clients"):
        run_command(clients=3, delay=0, timeout=1, url=url, json=str(report_file))
    thread.join(10)
    report = json.loads(report_file.read_text())
    assert report["failures"]["refused"] == 3
    assert report["failure_examples"]["refused"] == "Connection refused"
