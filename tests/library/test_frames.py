"""Inbound frames: the fast path for whole single-frame messages gives exactly what wsproto alone
gives (messages, close code, bytes to send back), whatever the frames and however they are split."""
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from ws4redis_server.transports.frames import InboundFrames

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


text = st.text(max_size=150).map(lambda s: s.encode("utf-8"))
data = st.binary(max_size=LIMIT + 20)
frames = st.one_of(
    text.map(lambda p: frame(0x81, p)),                                   # whole text messages
    data.map(lambda p: frame(0x82, p)),                                   # whole binary messages
    st.binary(min_size=LIMIT - 1, max_size=LIMIT + 1).map(lambda p: frame(0x82, p)),  # 1009 over it
    st.just(frame(0x81, b"\xff\xfe not utf-8")),                          # 1007
    st.just(frame(0x81, "é".encode()[:1])),                                 # cut in a character
    text.map(lambda p: frame(0x81, p, long_length=True)),                 # 1002 if under 126
    text.map(lambda p: frame(0x81, p, masked=False)),                     # unmasked: 1002
    text.map(lambda p: frame(0x01, p) + frame(0x80, p)),                  # two fragments
    text.map(lambda p: frame(0x01, p)),                                   # a fragment left open
    text.map(lambda p: frame(0x80, p)),                                   # lone continuation
    st.binary(max_size=20).map(lambda p: frame(0x89, p)),                 # ping: answered
    st.binary(max_size=20).map(lambda p: frame(0x8A, p)),                 # pong
    st.just(frame(0x88, struct.pack("!H", 1000) + b"bye")),               # close
    st.sampled_from([0x83, 0x8B, 0xC1, 0xA2, 0x91]).map(lambda b: frame(b, b"x")),  # reserved
    st.binary(min_size=1, max_size=12),                                   # garbage
)


def parse(chunks: list[bytes], fast: bool) -> tuple[list[bytes], int | None, bytes]:
    inbound = InboundFrames(LIMIT)
    if not fast:
        inbound._wsproto_idle = lambda: False  # type: ignore[method-assign]
        inbound._fast = False
    replies = b""
    for chunk in [*chunks, None]:
        replies += inbound.feed(chunk)
        if inbound.closed is not None:
            break
    return list(inbound.messages), inbound.closed.code if inbound.closed else None, replies


@settings(max_examples=400, deadline=None)
@given(st.lists(frames, max_size=12), st.lists(st.integers(0, 2000), max_size=6))
def test_the_fast_path_parses_as_wsproto_does(stream: list[bytes], cuts: list[int]) -> None:
    whole = b"".join(stream)
    points = sorted({min(cut, len(whole)) for cut in cuts})
    chunks = [whole[a:b] for a, b in zip([0, *points], [*points, len(whole)], strict=True) if b > a]
    assert parse(chunks, fast=True) == parse(chunks, fast=False)


def test_whole_messages_do_not_reach_wsproto() -> None:
    inbound = InboundFrames(LIMIT)
    inbound.feed(frame(0x81, b"12:1") + frame(0x82, b"\x00\x01") + frame(0x81, "é".encode() * 100))
    assert list(inbound.messages) == [b"12:1", b"\x00\x01", "é".encode() * 100]
    assert inbound._fast and inbound._protocol is None  # wsproto was not even needed


def test_after_a_split_frame_the_fast_path_resumes() -> None:
    inbound = InboundFrames(LIMIT)
    message = frame(0x81, b"3:0")
    inbound.feed(message[:3])
    assert not inbound._fast and not inbound.messages
    inbound.feed(message[3:])
    assert list(inbound.messages) == [b"3:0"] and inbound._fast
    inbound.feed(frame(0x81, b"4:1"))
    assert list(inbound.messages) == [b"3:0", b"4:1"]
