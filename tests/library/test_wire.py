"""The wire module: everything the server adds to a message, built and parsed in one place.
Formats round-trip, malformed input is refused (or read harmlessly where a hub reads it), and
on a real Redis a plain subscriber reads exactly the published bytes, the notice just before."""
from __future__ import annotations

import pytest
import redis
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from ws4redis_server import history, strip_envelopes, wire
from ws4redis_server.publisher import publish_to

ids = st.tuples(st.integers(0, 10**15), st.integers(0, 10**6)).map(wire.format_id)
receipts = st.none() | st.text("0123456789abcdef", min_size=1, max_size=32)
channels = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=60)


# -- ids -----------------------------------------------------------------------------------------

@given(st.integers(0, 10**15), st.integers(0, 10**6))
def test_ids_round_trip_and_sort_as_pairs(ms: int, seq: int) -> None:
    assert wire.parse_id(wire.format_id((ms, seq))) == (ms, seq)


def test_ids_compare_by_time_then_sequence() -> None:
    assert wire.parse_id("9-5") < wire.parse_id("10-0") < wire.parse_id("10-1")


@pytest.mark.parametrize("value", ["", "12", "12-", "-1", "a-1", "1-2-3", "1 -2", "1" * 21 + "-0", "1-0\n"])
def test_malformed_ids_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="a message id looks like"):
        wire.parse_id(value)


def test_receipt_ids_are_fresh_hex() -> None:
    first, second = wire.new_receipt_id(), wire.new_receipt_id()
    assert first != second and len(first) == 32 and int(first, 16) >= 0


# -- the notice ------------------------------------------------------------------------------------

@given(st.none() | ids, st.booleans(), receipts)
def test_notices_round_trip(message_id: str | None, text: bool, receipt: str | None) -> None:
    assert wire.parse_notice(wire.notice(message_id, text, receipt)) == (message_id, text, receipt)


def test_the_history_script_puts_the_id_between_the_notice_parts() -> None:
    before, after = wire.notice_parts(False, "abc")
    assert before + b"1-2" + after == wire.notice("1-2", False, "abc") == b"b 1-2 abc"
    assert wire.notice("1-2", True) == b"t 1-2"


@pytest.mark.parametrize("data, expected", [
    (b"", (None, True, None)),
    (b"t", (None, True, None)),
    (b"b", (None, False, None)),
    (b"x 1-0", ("1-0", True, None)),          # unknown opcode: text (the hub checks nothing more)
    (b"t 1-0 r extra fields", ("1-0", True, "r")),  # later fields are for later versions
    (b"t \xff\xfe", ("\ufffd\ufffd", True, None)),  # never raises
])
def test_malformed_notices_read_harmlessly(data: bytes, expected: tuple) -> None:
    assert wire.parse_notice(data) == expected


@given(st.text(max_size=5), channels)
def test_notice_channels_name_their_channel(prefix: str, channel: str) -> None:
    assert wire.notice_target(prefix, wire.notice_channel(prefix, channel)) == channel


@pytest.mark.parametrize("name", ["broadcast:news", "ws4redis:meta:broadcast:news", "ws4redis:meta:{x",
                                  "p:ws4redis:meta:{x}"])
def test_other_channels_are_no_notice_channels(name: str) -> None:
    assert wire.notice_target("", name) is None


@given(channels)
def test_companions_share_their_channels_cluster_slot(channel: str) -> None:
    if "}" in channel and wire._slot_tag(channel) is None:
        return  # a '}' cannot go in a hash tag: documented as another slot
    slot = key_slot(channel.encode())
    assert key_slot(wire.notice_channel("p:", channel).encode()) == slot
    assert key_slot(wire.binary_marker_key("p:", channel).encode()) == slot


def test_companion_names() -> None:
    assert wire.notice_channel("", "broadcast:news") == "ws4redis:meta:{broadcast:news}"
    assert wire.notice_channel("p:", "group:{red}:news") == "p:ws4redis:meta:{red}group:{red}:news"
    assert wire.notice_channel("", "group:a}b:news") == "ws4redis:meta:{}group:a}b:news"
    assert wire.binary_marker_key("p:", "p:broadcast:x") == "p:ws4redis:binary:{p:broadcast:x}"


# -- opcodes of what Redis keeps ---------------------------------------------------------------------

def test_a_persisted_message_is_binary_only_with_a_matching_marker() -> None:
    assert wire.binary_marker(b"abc", text=True) is None
    assert wire.binary_marker(b"\xff", text=False) is None  # not UTF-8: binary anyway
    marker = wire.binary_marker(b"abc", text=False)
    assert marker is not None
    assert not wire.persisted_is_text(b"abc", marker)
    assert wire.persisted_is_text(b"abd", marker)  # someone persisted another message since
    assert wire.persisted_is_text(b"abc", None) and not wire.persisted_is_text(b"\xff", None)


@pytest.mark.parametrize("opcode, data, text", [
    (b"t", b"abc", True), (b"b", b"abc", False), (b"", b"abc", True), (b"", b"\xff", False)])
def test_history_entries_keep_their_opcode(opcode: bytes, data: bytes, text: bool) -> None:
    assert wire.entry_is_text(opcode, data) is text


@pytest.mark.parametrize("data, expected", [
    (b"plain", (None, None, b"plain")),
    (b"\x00ws4r:i:1-0\x00hello", ("1-0", None, b"hello")),
    (b"\x00ws4r:i:1-0\x00\x00ws4r:r:abc\x00hello", ("1-0", "abc", b"hello")),
    (b"\x00ws4r:r:abc\x00\x00bin", (None, "abc", b"\x00bin")),
    (b"\x00ws4r:x:1\x00y", (None, None, b"\x00ws4r:x:1\x00y")),
])
def test_envelopes_of_earlier_publishers_are_still_read(data: bytes, expected: tuple) -> None:
    assert wire.unwrap_legacy(data) == expected
    assert strip_envelopes(data) == expected[2]


# -- sockets with ids ------------------------------------------------------------------------------

@given(st.none() | ids, st.binary(max_size=50))
def test_message_frames_round_trip(message_id: str | None, data: bytes) -> None:
    assert wire.parse_frame(wire.frame(message_id, data)) == (message_id, data, False, False)


@given(ids, st.booleans())
def test_position_markers_round_trip(position: str, gap: bool) -> None:
    assert wire.parse_frame(wire.position_marker(position, gap)) == (position, b"", True, gap)


def test_frames_are_what_the_javascript_client_reads() -> None:
    assert wire.frame("1763700000000-0", b"hi") == b"1763700000000-0\nhi"
    assert wire.frame(None, b"hi") == b"\nhi"
    assert wire.position_marker("5-1", False) == b"@5-1\n"
    assert wire.position_marker("5-1", True) == b"@5-1 gap\n"


@pytest.mark.parametrize("data", [b"no header", b"x-1\nm", b"1-0 gap\n", b"@\n", b"@1-0 gapp\n",
                                  b"1" * 49 + b"\n"])
def test_malformed_frames_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        wire.parse_frame(data)


# -- on a real Redis ---------------------------------------------------------------------------------

def _subscriber(client: redis.Redis, *names: str) -> redis.client.PubSub:
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(*names)
    for _ in names:
        assert pubsub.get_message(timeout=5) is None  # the confirmations, skipped
    return pubsub


def _read(pubsub: redis.client.PubSub, count: int) -> list[tuple[str, bytes]]:
    got = []
    while len(got) < count:
        message = pubsub.get_message(timeout=5)
        assert message is not None, f"only {got} within 5 s"
        got.append((message["channel"].decode(), message["data"]))
    return got


@pytest.mark.parametrize("history_length", [1000, 0])
@pytest.mark.parametrize("message, text, receipt", [
    (b"hello", None, None),
    ("héllo".encode(), False, None),
    (b"\xff\x00", None, "r1"),
])
def test_subscribers_read_the_bytes_published_the_notice_right_before(
        redis_server, history_length: int, message: bytes, text: bool | None, receipt: str | None) -> None:
    client = redis_server.client()
    channel = f"broadcast:w{history_length}{len(message)}{receipt}"
    companion = wire.notice_channel("", channel)
    both, plain = _subscriber(client, companion, channel), _subscriber(client, channel)
    try:
        with override_settings(WS4REDIS_HISTORY_LENGTH=history_length):
            assert publish_to(client, [channel], message, 30, text=text, receipt=receipt) == 2
        assert _read(plain, 1) == [(channel, message)]
        if history_length == 0 and text is None and receipt is None:
            assert _read(both, 1) == [(channel, message)]  # nothing to say: a plain PUBLISH
            return
        (first, data), second = _read(both, 2)
        assert first == companion and second == (channel, message)
        found = wire.parse_notice(data)
        assert (found.text, found.receipt) == (text is not False and wire.is_text(message), receipt)
        assert (found.message_id is not None) == (history_length > 0)
        assert client.get(channel) == message
    finally:
        both.close()
        plain.close()


def test_the_history_keeps_the_opcode(redis_server) -> None:
    client = redis_server.client()
    channel = "broadcast:wire-opcodes"
    first, _ = history.publish(client, "", [channel], b"abc", length=100, seconds=60, text=False)
    second, _ = history.publish(client, "", [channel], b"abc", length=100, seconds=60)
    # An entry as an earlier version wrote it: no opcode.
    ms, seq = wire.parse_id(second)
    third = wire.format_id((ms, seq + 1))
    client.xadd(history.stream_key("", channel), {"m": b"\xff"}, id=third)
    client.set(history.sequence_key(""), third)
    found = history.replay(client, "", [channel], "0-0", 60)
    assert [(entry[2], entry[3]) for entry in found.entries] == [(b"abc", False), (b"abc", True), (b"\xff", False)]
    assert found.entries[0][0] == first
