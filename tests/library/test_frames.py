"""Inbound frames: the protocol core parses exactly as wsproto does (messages, close code, bytes to
send back), whatever the frames and however they are split. wsproto is the reference; its size
limit is the one the server had on top of it (the sum of a message's fragments)."""
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import Opcode, RsvBits

from ws4redis_server import wire
from ws4redis_server.compression import negotiate
from ws4redis_server.frames import BinaryMessage
from ws4redis_server.protocol import Protocol

LIMIT = 300  # bytes: small, so that some messages go over it
MASK = b"\x5a\x0f\xc3\x81"


def frame(first: int, payload: bytes, masked: bool = True, long_length: bool = False) -> bytes:
    """A client frame: ``first`` (FIN, RSV, opcode) as given, the shortest length unless asked."""
    if len(payload) < 126 and not long_length:
        header = bytes([first, (0x80 if masked else 0) | len(payload)])
    else:
        header = bytes([first, (0x80 if masked else 0) | 126]) + struct.pack("!H", len(payload))
    if not masked:
        return header + payload
    return header + MASK + bytes(byte ^ MASK[i % 4] for i, byte in enumerate(payload))


text = st.text(max_size=60).map(lambda s: s.encode("utf-8"))
data = st.binary(max_size=LIMIT + 20)
frames = st.one_of(
    text.map(lambda p: frame(0x81, p)),                                   # whole text messages
    data.map(lambda p: frame(0x82, p)),                                   # whole binary messages
    st.binary(min_size=LIMIT - 1, max_size=LIMIT + 1).map(lambda p: frame(0x82, p)),  # 1009 over it
    st.just(frame(0x81, b"\xff\xfe not utf-8")),                          # 1007
    st.just(frame(0x81, "é".encode()[:1])),                                 # cut in a character
    st.just(frame(0x01, "é".encode()[:1]) + frame(0x80, "é".encode()[1:])),  # ... across fragments
    st.just(frame(0x01, b"ok") + frame(0x80, b"\xc3")),                    # ends inside a character
    text.map(lambda p: frame(0x81, p, long_length=True)),                 # 1002 if under 126
    text.map(lambda p: frame(0x81, p, masked=False)),                     # unmasked: 1002
    text.map(lambda p: frame(0x01, p) + frame(0x80, p)),                  # two fragments
    data.map(lambda p: frame(0x02, p[:150]) + frame(0x00, p[150:]) + frame(0x80, b"")),  # three
    text.map(lambda p: frame(0x01, p)),                                   # a fragment left open
    text.map(lambda p: frame(0x00, p)),                                   # a middle fragment
    text.map(lambda p: frame(0x80, p)),                                   # lone continuation
    st.binary(max_size=20).map(lambda p: frame(0x89, p)),                 # ping: answered
    st.binary(max_size=20).map(lambda p: frame(0x8A, p)),                 # pong
    st.just(frame(0x09, b"x")),                                           # fragmented ping
    st.just(frame(0x89, b"x" * 126, long_length=True)),                   # ping over 125 bytes
    st.just(frame(0x88, struct.pack("!H", 1000) + b"bye")),               # close
    st.just(frame(0x88, b"")),                                            # close without a code
    st.sampled_from([b"\x03", struct.pack("!H", 999), struct.pack("!H", 1005), struct.pack("!H", 2000),
                     struct.pack("!H", 1000) + b"\xff"]).map(lambda p: frame(0x88, p)),  # bad closes
    st.sampled_from([0x83, 0x8B, 0xC1, 0xA2, 0x91]).map(lambda b: frame(b, b"x")),  # reserved
    st.binary(min_size=1, max_size=12),                                   # garbage
)


def reference(chunks: list[bytes], protocol: Connection | None = None) -> tuple[list[bytes], int | None, list[bytes]]:
    """wsproto's reading: (messages, close code or None, pong payloads)."""
    protocol = protocol or Connection(ConnectionType.SERVER)
    messages: list[bytes] = []
    pongs: list[bytes] = []
    fragments: list[bytes] = []
    size = 0
    for chunk in chunks:
        protocol.receive_data(chunk)
        for event in protocol.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                piece = event.data.encode("utf-8") if isinstance(event, TextMessage) else bytes(event.data)
                size += len(piece)
                if size > LIMIT:
                    return messages, 1009, pongs
                fragments.append(piece)
                if event.message_finished:
                    whole = b"".join(fragments)
                    messages.append(BinaryMessage(whole) if isinstance(event, BytesMessage) else whole)
                    fragments, size = [], 0
            elif isinstance(event, Ping):
                pongs.append(bytes(event.payload))
            elif isinstance(event, CloseConnection):
                if protocol.state is ConnectionState.REMOTE_CLOSING:  # the peer's own close frame
                    return messages, event.code if event.code != 1005 else 1000, pongs
                return messages, event.code, pongs
    return messages, None, pongs


def ours(chunks: list[bytes], protocol: Protocol | None = None) -> tuple[list[bytes], int | None, list[bytes]]:
    protocol = protocol or Protocol(LIMIT)
    for chunk in chunks:
        protocol.receive_data(chunk)
    pongs = [payload for opcode, payload in protocol.outbox if opcode == 0xA]
    return list(protocol.messages), protocol.ending[0] if protocol.ending else None, pongs


def split(stream: list[bytes], cuts: list[int]) -> list[bytes]:
    whole = b"".join(stream)
    points = sorted({min(cut, len(whole)) for cut in cuts})
    return [whole[a:b] for a, b in zip([0, *points], [*points, len(whole)], strict=True) if b > a]


@settings(max_examples=600, deadline=None)
@given(st.lists(frames, max_size=12), st.lists(st.integers(0, 2000), max_size=6))
def test_the_core_parses_as_wsproto_does(stream: list[bytes], cuts: list[int]) -> None:
    chunks = split(stream, cuts)
    if ours(chunks) != reference(chunks):
        # Only when the stream ends inside a frame that breaks a rule: the core refuses a frame on
        # its whole header (a too large one before its payload is read), wsproto on the bytes it
        # has. Completed by bytes that are no frame, both must then agree.
        chunks.append(b"\x00" * 512)
    expected_messages, expected_code, expected_pongs = reference(chunks)
    messages, code, pongs = ours(chunks)
    assert messages == expected_messages
    assert [type(message) for message in messages] == [type(message) for message in expected_messages]
    assert code == expected_code
    assert pongs == expected_pongs  # the pings parsed before the end are answered, in order


def test_whole_messages_in_one_read() -> None:
    protocol = Protocol(LIMIT)
    protocol.receive_data(frame(0x81, b"12:1") + frame(0x82, b"\x00\x01") + frame(0x81, "é".encode() * 100))
    assert list(protocol.messages) == [b"12:1", b"\x00\x01", "é".encode() * 100]
    assert type(protocol.messages[1]) is BinaryMessage


def test_a_frame_split_byte_by_byte() -> None:
    protocol = Protocol(LIMIT)
    message = frame(0x81, b"3:0" * 50) + frame(0x81, b"4:1")
    for byte in message:
        protocol.receive_data(bytes([byte]))
    assert list(protocol.messages) == [b"3:0" * 50, b"4:1"]


# -- with permessage-deflate: against wsproto's own PerMessageDeflate ------------------------------

OFFER = "permessage-deflate; client_max_window_bits"


class _Client:
    client = True


compressed_messages = st.lists(st.tuples(
    st.sampled_from(["text", "binary", "plain", "garbage", "rsv1-continuation"]),
    st.one_of(st.text(max_size=80).map(str.encode), st.binary(max_size=80), st.just(b"a" * 2000)),
    st.lists(st.integers(0, 60), max_size=3),  # where its compressed payload is cut into fragments
    st.booleans(),  # a ping after it
), max_size=8)


def compressed_stream(messages: list) -> bytes:
    """The frames of ``messages``, compressed as a client with context takeover would."""
    client = PerMessageDeflate()
    client.finalize(negotiate(OFFER)[0])
    out = b""
    for kind, data, cuts, ping in messages:
        if kind == "plain":  # uncompressed, as a client may send any message
            out += frame(0x81 if wire.is_text(data) else 0x82, data)
            continue
        if kind == "garbage":  # short: a compressed frame far over the limit is refused on its header
            out += frame(0xC2, b"\xff" + data[:80])
            continue
        text = kind == "text" and wire.is_text(data)
        _, payload = client.frame_outbound(_Client(), Opcode.TEXT if text else Opcode.BINARY,
                                           RsvBits(False, False, False), data, True)
        points = sorted({min(cut, len(payload)) for cut in cuts})
        pieces = [payload[a:b] for a, b in zip([0, *points], [*points, len(payload)], strict=True)]
        for index, piece in enumerate(pieces):
            first = (0x40 | (0x1 if text else 0x2)) if index == 0 else 0x0
            if index and kind == "rsv1-continuation":
                first |= 0x40
            out += frame(first | (0x80 if index == len(pieces) - 1 else 0), piece)
        if ping:
            # Not between its fragments: wsproto 1.3.2 then passes the rest of the message on
            # still compressed (the ping's frame resets its "this message is compressed" state);
            # the core's answer there is tested in test_protocol.py and, against websockets'
            # client, in tests/test_conformance.py.
            out += frame(0x89, b"p")
    return out


def reference_deflate(chunks: list[bytes]) -> tuple[list[bytes], int | None, list[bytes]]:
    extension = PerMessageDeflate()
    extension.accept(OFFER)
    return reference(chunks, Connection(ConnectionType.SERVER, extensions=[extension]))


def ours_deflate(chunks: list[bytes]) -> tuple[list[bytes], int | None, list[bytes]]:
    return ours(chunks, Protocol(LIMIT, deflate=negotiate(OFFER)[1]))


@settings(max_examples=300, deadline=None)
@given(compressed_messages, st.lists(st.integers(0, 3000), max_size=6))
def test_compressed_streams_parse_as_wsproto_does(messages: list, cuts: list[int]) -> None:
    chunks = split([compressed_stream(messages)], cuts)
    if ours_deflate(chunks) != reference_deflate(chunks):
        chunks.append(b"\x00" * 512)  # as above: a frame cut at the end of the stream
    assert ours_deflate(chunks) == reference_deflate(chunks)
