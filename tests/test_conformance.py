"""RFC 6455 from the outside, under both transports (nginx → uWSGI, and runserver): a real client
library (websockets) and raw sockets (for what it will not send) against the echo handler that
sends back every message with its own type (/ws/echo/raw/, ``webapp.echo.handlers.raw_echo``)."""
from __future__ import annotations

import struct
import threading
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Pong, TextMessage

from ws4redis_server import history
from ws4redis_server.conf import get_settings
from ws4redis_server.testing import connect, raw_socket

SERVERS = ["stack", "devserver"]
ECHO = "/ws/echo/raw/"
MASK = b"\x0b\xad\xf0\x0d"
LIMIT = 64 * 1024  # the site's WS4REDIS_MAX_MESSAGE_SIZE (the default)


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest):  # noqa: ANN201
    return request.getfixturevalue(request.param)


def frame(first: int, payload: bytes = b"") -> bytes:
    """A masked client frame with ``first`` (FIN, RSV, opcode) as given."""
    length = len(payload)
    if length < 126:
        header = bytes([first, 0x80 | length])
    elif length < 65536:
        header = bytes([first, 0x80 | 126]) + struct.pack("!H", length)
    else:
        header = bytes([first, 0x80 | 127]) + struct.pack("!Q", length)
    return header + MASK + bytes(byte ^ MASK[i % 4] for i, byte in enumerate(payload))


class Raw:
    """A raw socket after the handshake, reading the server's frames with wsproto's client."""

    def __init__(self, url: str) -> None:
        self.sock = raw_socket(url)
        self.client = Connection(ConnectionType.CLIENT)
        self.pending: list = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def event(self, timeout: float = 10):  # noqa: ANN201
        """The next message, pong or close frame from the server: ("text", str), ("binary",
        bytes), ("pong", bytes) or ("close", code, reason)."""
        self.sock.settimeout(timeout)
        while not self.pending:
            data = self.sock.recv(65536)
            assert data, "the server ended the connection without a close frame"
            self.client.receive_data(data)
            for event in self.client.events():
                if isinstance(event, TextMessage):
                    self.pending.append(("text", event.data))
                elif isinstance(event, BytesMessage):
                    self.pending.append(("binary", bytes(event.data)))
                elif isinstance(event, Pong):
                    self.pending.append(("pong", bytes(event.payload)))
                elif isinstance(event, CloseConnection):
                    self.pending.append(("close", event.code, event.reason))
        return self.pending.pop(0)

    def finish(self, code: int) -> None:
        """Answers the server's close frame and checks that the server then ends TCP cleanly: an
        end of stream, no reset."""
        try:
            self.send(frame(0x88, struct.pack("!H", code)))
            self.sock.settimeout(10)
            assert self.sock.recv(65536) == b""
        finally:
            self.sock.close()


def close_of(raw: Raw) -> tuple[list, tuple]:
    """Reads until the server's close frame; returns (what came before, the close event)."""
    before = []
    while (event := raw.event())[0] != "close":
        before.append(event)
    return before, event


# -- text and binary -----------------------------------------------------------------------------

def test_every_message_comes_back_with_its_own_type(server) -> None:  # noqa: ANN001
    messages = ["héllo", "", b"", b"abc", "héllo".encode(), bytes(range(256)), "x" * LIMIT, b"\x00" * LIMIT]
    with connect(server.ws_url + ECHO) as ws:
        for message in messages:
            ws.send(message)
            echoed = ws.recv(timeout=10)
            assert echoed == message and type(echoed) is type(message), (message[:20], echoed[:20])


def test_fragmented_messages_come_back_whole(server) -> None:  # noqa: ANN001
    with connect(server.ws_url + ECHO) as ws:
        ws.send(["frag", "mented ", "", "text é"])
        assert ws.recv(timeout=10) == "fragmented text é"
        ws.send([b"\x00", b"", b"bin\xff"])
        assert ws.recv(timeout=10) == b"\x00bin\xff"
        pieces = [bytes([n]) * 1024 for n in range(64)]  # 64 KiB in 64 fragments: at the limit
        ws.send(pieces)
        assert ws.recv(timeout=10) == b"".join(pieces)


def test_pings_between_fragments_are_answered(server) -> None:  # noqa: ANN001
    with connect(server.ws_url + ECHO) as ws:
        pongs = []

        def fragments():  # noqa: ANN202
            for number in range(5):
                yield f"part {number};"
                pongs.append(ws.ping(f"ping {number}".encode()))

        ws.send(fragments())
        assert ws.recv(timeout=10) == "".join(f"part {number};" for number in range(5))
        assert all(pong.wait(10) for pong in pongs)


def test_pings_between_fragments_from_a_raw_socket(server) -> None:  # noqa: ANN001
    raw = Raw(server.ws_url + ECHO)
    raw.send(frame(0x01, b"a") + frame(0x89, b"1") + frame(0x00, b"b") + frame(0x8A, b"unsolicited")
             + frame(0x89, b"2") + frame(0x80, b"c"))
    assert [raw.event() for _ in range(3)] == [("pong", b"1"), ("pong", b"2"), ("text", "abc")]
    raw.send(frame(0x88, struct.pack("!H", 1000)))
    assert raw.event() == ("close", 1000, "")
    raw.sock.settimeout(10)
    assert raw.sock.recv(65536) == b""  # then the end of the stream, no reset
    raw.sock.close()


# -- UTF-8 -------------------------------------------------------------------------------------

def test_utf8_split_across_fragments_is_one_text_message(server) -> None:  # noqa: ANN001
    encoded = "é😀".encode()
    raw = Raw(server.ws_url + ECHO)
    raw.send(b"".join(frame(0x80 if at == len(encoded) - 1 else (0x01 if at == 0 else 0x00), encoded[at:at + 1])
                      for at in range(len(encoded))))
    assert raw.event() == ("text", "é😀")
    raw.send(frame(0x88, struct.pack("!H", 1000)))
    assert raw.event()[:2] == ("close", 1000)
    raw.sock.close()


def test_invalid_utf8_split_across_fragments_closes_with_1007(server) -> None:  # noqa: ANN001
    raw = Raw(server.ws_url + ECHO)
    raw.send(frame(0x81, b"fine"))
    assert raw.event() == ("text", "fine")
    raw.send(frame(0x01, "é".encode()[:1]) + frame(0x80, b"("))  # a lead byte, then no continuation
    before, close = close_of(raw)
    assert before == [] and close[1] == 1007, close
    raw.finish(1007)


# -- close codes and reasons -------------------------------------------------------------------

@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (1001, "going"), (4321, "custom reason é")])
def test_the_clients_close_code_and_reason_come_back(server, code: int, reason: str) -> None:  # noqa: ANN001
    with connect(server.ws_url + ECHO) as ws:
        ws.send("x")
        assert ws.recv(timeout=10) == "x"
        ws.close(code, reason)
        received = ws.protocol.close_rcvd
        assert (received.code, received.reason) == (code, reason)


def test_a_message_over_the_limit_closes_with_1009_and_its_reason(server) -> None:  # noqa: ANN001
    raw = Raw(server.ws_url + ECHO)
    raw.send(frame(0x82, b"x" * 10) + frame(0x82, b"y" * (LIMIT + 1)))
    before, close = close_of(raw)
    assert before == [("binary", b"x" * 10)]
    assert close == ("close", 1009, f"message over {LIMIT} bytes")
    raw.finish(1009)


@pytest.mark.parametrize("bad", [
    frame(0xC1, b"rsv1"), frame(0x80, b"lone continuation"), frame(0x83, b"reserved opcode"),
    frame(0x09, b"fragmented ping"), bytes([0x81, 0x05]) + b"plain",
], ids=["rsv1", "lone-continuation", "reserved-opcode", "fragmented-ping", "unmasked"])
def test_the_reply_goes_out_before_the_protocol_error_close(server, bad: bytes) -> None:  # noqa: ANN001
    raw = Raw(server.ws_url + ECHO)
    raw.send(frame(0x81, b"question") + frame(0x82, b"\x01\x02") + bad)
    before, close = close_of(raw)
    assert before == [("text", "question"), ("binary", b"\x01\x02")]
    assert close[1] == 1002 and close[2], close  # with a reason
    raw.finish(1002)


def test_no_reset_reaches_nginx_after_protocol_errors(stack) -> None:  # noqa: ANN001
    log = stack.run_dir / "nginx-error.log"
    before = log.read_text(errors="replace") if log.exists() else ""
    for bad in [frame(0xC1, b"rsv1"), frame(0x80, b"lone"), frame(0x81, b"\xff")]:
        raw = Raw(stack.ws_url + ECHO)
        raw.send(frame(0x81, b"hi") + bad)
        close_of(raw)
        raw.finish(1002)
    after = log.read_text(errors="replace") if log.exists() else ""
    assert "Connection reset by peer" not in after[len(before):], after[len(before):]


# -- inbound messages are handled before the close is answered ----------------------------------

def test_a_message_sent_just_before_closing_is_published_before_close_returns(server, redis_server) -> None:  # noqa: ANN001
    stream = history.stream_key(get_settings().prefix or "", "broadcast:demo")
    late = []
    for attempt in range(100):
        message = f"last words {uuid.uuid4().hex} {attempt}"
        with connect(f"{server.ws_url}/ws/demo?publish-broadcast") as ws:
            ws.send(message)
            ws.close()
        newest = redis_server.client().xrevrange(stream, count=20)
        if not any(fields.get(b"m") == message.encode() for _, fields in newest):
            late.append(attempt)
    assert late == []


# -- a small fuzz of valid frame sequences, from outside ------------------------------------------

messages = st.one_of(
    st.text(max_size=40).map(lambda text: (True, text.encode())),
    st.binary(max_size=40).map(lambda data: (False, data)),
)
operations = st.lists(st.tuples(messages, st.lists(st.integers(0, 40), max_size=3), st.booleans()),
                      min_size=1, max_size=8)


def encode(operation: tuple) -> tuple[bytes, int]:
    """The frames of one message cut at ``cuts`` (a ping after its first fragment if asked);
    returns (bytes, pings sent)."""
    (text, payload), cuts, ping = operation
    points = sorted({min(cut, len(payload)) for cut in cuts})
    pieces = [payload[a:b] for a, b in zip([0, *points], [*points, len(payload)], strict=True)]
    out, pings = b"", 0
    for index, piece in enumerate(pieces):
        opcode = (0x1 if text else 0x2) if index == 0 else 0x0
        out += frame((0x80 if index == len(pieces) - 1 else 0) | opcode, piece)
        if ping and index == 0:
            out += frame(0x89, b"p")
            pings += 1
    return out, pings


@pytest.mark.parametrize("name", SERVERS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=operations, split=st.integers(1, 64))
def test_any_valid_sequence_of_frames_is_echoed(name: str, request: pytest.FixtureRequest, sequence: list,
                                                split: int) -> None:
    raw = Raw(request.getfixturevalue(name).ws_url + ECHO)
    data, pings = b"", 0
    for operation in sequence:
        encoded, count = encode(operation)
        data += encoded
        pings += count
    # Sent in small pieces from another thread while the replies are read.
    sender = threading.Thread(target=lambda: [raw.send(data[at:at + split]) for at in range(0, len(data), split)])
    sender.start()
    events = [raw.event() for _ in range(len(sequence) + pings)]
    sender.join()
    expected = [("text", payload.decode()) if text else ("binary", payload) for (text, payload), _, _ in sequence]
    assert [event for event in events if event[0] != "pong"] == expected
    assert events.count(("pong", b"p")) == pings
    raw.send(frame(0x88, struct.pack("!H", 1000)))
    assert raw.event()[:2] == ("close", 1000)
    try:
        assert raw.sock.recv(65536) == b""
    except TimeoutError:
        pytest.fail("the server did not end the connection after the closing handshake")
    raw.sock.close()


# -- permessage-deflate (WS4REDIS_COMPRESSION) ---------------------------------------------------

@pytest.fixture(scope="module", params=SERVERS)
def compressing(request: pytest.FixtureRequest, redis_server):  # noqa: ANN001, ANN201
    """A stack, or a runserver, of its own with WS4REDIS_COMPRESSION on."""
    if request.param == "stack":
        from deploy.stack import Stack, free_port
        from tests.clients import all_workers
        from tests.fixtures import WORK

        env = {"WS_WORKERS": "1", "DJANGO_WORKERS": "1", "WS4REDIS_COMPRESSION": "1"}
        with Stack(free_port(), redis_server.url, run_dir=WORK / "run-compression", static_root=WORK / "static",
                   env=env, nginx_workers=1) as running:
            all_workers(running, "websocket")
            yield running
        return
    from deploy.stack import free_port
    from tests.fixtures import DevServer

    patch = pytest.MonkeyPatch()
    patch.setenv("WS4REDIS_COMPRESSION", "1")
    try:
        running = DevServer(free_port()).start()
    finally:
        patch.undo()
    yield running
    running.stop()


def test_compression_is_negotiated_and_messages_come_back(compressing) -> None:  # noqa: ANN001
    text = "compressible " * 500
    with connect(compressing.ws_url + ECHO, timeout=60) as ws:
        assert ws.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
        for message in [text, text.encode(), "", b"", "héllo", bytes(range(256)) * 40]:
            ws.send(message)
            echoed = ws.recv(timeout=10)
            assert echoed == message and type(echoed) is type(message)


def test_compressed_fragmented_messages_with_pings_between(compressing) -> None:  # noqa: ANN001
    with connect(compressing.ws_url + ECHO, timeout=60) as ws:
        pongs = []

        def fragments():  # noqa: ANN202
            for number in range(20):
                yield f"fragment {number} " * 50
                pongs.append(ws.ping(str(number).encode()))

        ws.send(fragments())
        assert ws.recv(timeout=10) == "".join(f"fragment {number} " * 50 for number in range(20))
        assert all(pong.wait(10) for pong in pongs)
        ws.send([b"\x00" * 30000, b"\x01" * 30000])  # inflates to 60,000 bytes: under the limit
        assert ws.recv(timeout=10) == b"\x00" * 30000 + b"\x01" * 30000


@pytest.mark.parametrize("offer", [
    "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; client_max_window_bits=9; server_max_window_bits=10",
])
def test_negotiated_parameters_are_honoured(compressing, offer: str) -> None:  # noqa: ANN001
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

    params = dict(part.strip().partition("=")[::2] for part in offer.split(";")[1:])
    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover="server_no_context_takeover" in params,
        client_no_context_takeover="client_no_context_takeover" in params,
        server_max_window_bits=int(params["server_max_window_bits"]) if "server_max_window_bits" in params else None,
        client_max_window_bits=int(params["client_max_window_bits"]) if "client_max_window_bits" in params else None)
    with connect(compressing.ws_url + ECHO, timeout=60, compression=None, extensions=[factory]) as ws:
        answer = ws.response.headers["Sec-WebSocket-Extensions"]
        for name in params:
            assert name in answer
        for number in range(5):
            message = f"message {number} " * 200
            ws.send(message)
            assert ws.recv(timeout=10) == message


def test_a_compressed_message_that_inflates_past_the_limit_closes_with_1009(compressing) -> None:  # noqa: ANN001
    from websockets.exceptions import ConnectionClosed

    with connect(compressing.ws_url + ECHO, timeout=60) as ws:
        ws.send(b"\x00" * (LIMIT + 1))  # a few hundred bytes on the wire
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1009


def test_without_an_offer_nothing_is_compressed(compressing) -> None:  # noqa: ANN001
    with connect(compressing.ws_url + ECHO, timeout=60, compression=None) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send("plain")
        assert ws.recv(timeout=10) == "plain"


@pytest.mark.browser
def test_chromium_negotiates_compression_and_gets_every_message_back(compressing, browser) -> None:  # noqa: ANN001
    page = browser.new_page()
    try:
        page.goto(compressing.http_url + "/")
        result = page.evaluate("""async (url) => {
            const ws = new WebSocket(url);
            ws.binaryType = "arraybuffer";
            const received = [];
            ws.onmessage = (event) => received.push(event.data);
            await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
            const sent = ["héllo ".repeat(300), "", new Uint8Array([0, 1, 2, 255]).buffer, new ArrayBuffer(0)];
            for (const message of sent) ws.send(message);
            const deadline = Date.now() + 10000;
            while (received.length < sent.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
            ws.close(4002, "done");
            const describe = (data) => typeof data === "string" ? ["text", data.length]
                                                               : ["binary", Array.from(new Uint8Array(data))];
            return { extensions: ws.extensions, received: received.map(describe) };
        }""", compressing.ws_url + ECHO)
    finally:
        page.close()
    assert result["extensions"].startswith("permessage-deflate")
    assert result["received"] == [["text", 6 * 300], ["text", 0], ["binary", [0, 1, 2, 255]], ["binary", []]]
