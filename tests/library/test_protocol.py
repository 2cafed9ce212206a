"""The socket's protocol core (ws4redis_server.protocol) and delivery rules (delivery.py), driven
directly: no socket, no uWSGI, no Redis. What the server writes is read back by wsproto's client."""
from __future__ import annotations

import struct
from typing import Any

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import Opcode, RsvBits

from ws4redis_server import wire
from ws4redis_server.compression import negotiate
from ws4redis_server.delivery import Delivery, resume_start
from ws4redis_server.frames import BinaryMessage
from ws4redis_server.history import Replay
from ws4redis_server.protocol import Protocol, State

MASK = b"\x37\xfa\x21\x3d"
LIMIT = 1000


def frame(first: int, payload: bytes = b"", masked: bool = True) -> bytes:
    """A client frame with ``first`` (FIN, RSV, opcode) as given."""
    length = len(payload)
    if length < 126:
        header = bytes([first, (0x80 if masked else 0) | length])
    elif length < 65536:
        header = bytes([first, (0x80 if masked else 0) | 126]) + struct.pack("!H", length)
    else:
        header = bytes([first, (0x80 if masked else 0) | 127]) + struct.pack("!Q", length)
    if not masked:
        return header + payload
    return header + MASK + bytes(byte ^ MASK[i % 4] for i, byte in enumerate(payload))


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(0x88, struct.pack("!H", code) + reason.encode("utf-8"))


def sent(protocol: Protocol) -> list:
    """Everything the server would write now, as wsproto's client reads it."""
    client = Connection(ConnectionType.CLIENT)
    while data := protocol.data_to_send():
        client.receive_data(data)
    events = []
    for event in client.events():
        if isinstance(event, TextMessage):
            events.append(("text", event.data))
        elif isinstance(event, BytesMessage):
            events.append(("binary", bytes(event.data)))
        elif isinstance(event, Ping):
            events.append(("ping", bytes(event.payload)))
        elif isinstance(event, Pong):
            events.append(("pong", bytes(event.payload)))
        elif isinstance(event, CloseConnection):
            events.append(("close", event.code, event.reason))
    return events


def new(**kwargs) -> Protocol:  # noqa: ANN003
    return Protocol(kwargs.pop("max_message_size", LIMIT), **kwargs)


# -- text and binary ----------------------------------------------------------------------------

@pytest.mark.parametrize("payload", [b"", b"abc", "héllo".encode(), b"\xff\x00"])
def test_binary_stays_binary_both_ways(payload: bytes) -> None:
    protocol = new()
    protocol.receive_data(frame(0x82, payload))
    [message] = protocol.messages
    assert type(message) is BinaryMessage and message == payload
    protocol.send(bytes(message), text=False)
    assert sent(protocol) == [("binary", payload)]


def test_text_stays_text_both_ways() -> None:
    protocol = new()
    protocol.receive_data(frame(0x81, "héllo".encode()) + frame(0x81, b""))
    assert list(protocol.messages) == ["héllo".encode(), b""]
    assert all(type(message) is bytes for message in protocol.messages)
    protocol.send("héllo".encode(), text=True)
    assert sent(protocol) == [("text", "héllo")]


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_server_frames_of_every_length_form(size: int) -> None:
    protocol = new(outbox_bytes=1 << 20)
    protocol.send(b"x" * size, text=False)
    assert sent(protocol) == [("binary", b"x" * size)]


# -- fragmentation and control frames ---------------------------------------------------------

def test_a_fragmented_text_message() -> None:
    protocol = new()
    protocol.receive_data(frame(0x01, b"one ") + frame(0x00, b"two ") + frame(0x80, b"three"))
    assert list(protocol.messages) == [b"one two three"]


def test_a_fragmented_binary_message_with_empty_fragments() -> None:
    protocol = new()
    protocol.receive_data(frame(0x02, b"") + frame(0x00, b"\x00\x01") + frame(0x80, b""))
    assert list(protocol.messages) == [b"\x00\x01"] and type(protocol.messages[0]) is BinaryMessage


def test_control_frames_between_fragments() -> None:
    protocol = new()
    protocol.receive_data(frame(0x01, b"a") + frame(0x89, b"p1") + frame(0x00, b"b") + frame(0x8A, b"x")
                          + frame(0x89, b"p2") + frame(0x80, b"c"))
    assert list(protocol.messages) == [b"abc"]
    assert sent(protocol) == [("pong", b"p1"), ("pong", b"p2")]


def test_a_message_split_at_every_byte() -> None:
    protocol = new()
    data = frame(0x01, "é".encode()) + frame(0x89, b"ping") + frame(0x80, "è".encode() * 100)
    for byte in data:
        protocol.receive_data(bytes([byte]))
    assert list(protocol.messages) == ["é".encode() + "è".encode() * 100]
    assert sent(protocol) == [("pong", b"ping")]


# -- protocol errors: 1002, 1007, 1009 ----------------------------------------------------------

@pytest.mark.parametrize("data", [
    frame(0x81, b"hi", masked=False),
    frame(0x80, b"lone continuation"),
    frame(0x00, b"lone middle fragment"),
    frame(0x83, b"reserved opcode"),
    frame(0x8B, b"reserved control opcode"),
    frame(0xC1, b"RSV1 without an extension"),
    frame(0x91, b"RSV3"),
    frame(0x09, b"fragmented ping"),
    frame(0x89, b"x" * 126),
    frame(0x01, b"a") + frame(0x81, b"b"),
    bytes([0x81, 0x80 | 126, 0, 5]) + MASK + b"hello",  # a length not in its shortest form
    frame(0x88, b"\x03"),
    close_frame(1005),
    close_frame(999),
    close_frame(2999),
], ids=["unmasked", "lone-continuation", "lone-middle", "reserved", "reserved-control", "rsv1", "rsv3",
        "fragmented-ping", "long-ping", "interleaved-messages", "long-length", "close-1-byte", "close-1005",
        "close-999", "close-2999"])
def test_protocol_errors_close_with_1002(data: bytes) -> None:
    protocol = new()
    protocol.receive_data(frame(0x81, b"before") + data + frame(0x81, b"after"))
    assert list(protocol.messages) == [b"before"]
    assert protocol.ending is not None and protocol.ending[0] == 1002


def test_a_reply_goes_out_before_the_protocol_error_close() -> None:
    protocol = new()
    protocol.receive_data(frame(0x81, b"question") + frame(0xC1, b"bad"))
    assert list(protocol.messages) == [b"question"]
    protocol.messages.clear()
    # The adapter lets the application answer before it closes.
    assert protocol.send(b"answer", text=True)
    protocol.close(*protocol.ending)
    assert sent(protocol)[:2] == [("text", "answer"), ("close", 1002, "reserved bits set without an extension")]
    assert protocol.awaiting_close


def test_invalid_utf8_closes_with_1007() -> None:
    protocol = new()
    protocol.receive_data(frame(0x81, b"ok") + frame(0x81, b"\xff\xfe"))
    assert list(protocol.messages) == [b"ok"] and protocol.ending[0] == 1007


def test_utf8_split_across_fragments_is_fine() -> None:
    protocol = new()
    encoded = "😀".encode()
    protocol.receive_data(frame(0x01, encoded[:1]) + frame(0x00, encoded[1:3]) + frame(0x80, encoded[3:]))
    assert list(protocol.messages) == [encoded] and protocol.ending is None


def test_invalid_utf8_is_refused_in_its_fragment_before_the_message_ends() -> None:
    protocol = new()
    protocol.receive_data(frame(0x01, "é".encode()[:1]))
    assert protocol.ending is None  # a character may continue in the next fragment
    protocol.receive_data(frame(0x00, b"\x41"))  # it does not
    assert protocol.ending[0] == 1007 and not protocol.messages


def test_a_text_message_ending_inside_a_character_closes_with_1007() -> None:
    protocol = new()
    protocol.receive_data(frame(0x01, b"ok") + frame(0x80, "é".encode()[:1]))
    assert protocol.ending[0] == 1007


def test_a_message_at_the_limit_passes_and_over_it_closes_with_1009() -> None:
    protocol = new()
    protocol.receive_data(frame(0x82, b"x" * LIMIT))
    assert list(protocol.messages) == [b"x" * LIMIT] and protocol.ending is None
    protocol.receive_data(frame(0x82, b"x" * (LIMIT + 1)))
    assert protocol.ending == (1009, f"message over {LIMIT} bytes")


def test_fragments_over_the_limit_together_close_with_1009() -> None:
    protocol = new()
    protocol.receive_data(frame(0x01, b"x" * 600) + frame(0x80, b"x" * 401))
    assert protocol.ending[0] == 1009 and not protocol.messages


def test_a_too_large_frame_is_refused_on_its_header_and_never_buffered() -> None:
    protocol = new()
    big = frame(0x82, b"x" * 200_000)
    protocol.receive_data(big[:20])
    assert protocol.ending[0] == 1009
    for at in range(20, len(big), 4096):
        protocol.receive_data(big[at:at + 4096])
        assert protocol._have < 16  # dropped as it comes
    # The peer answers the close frame: it is found after the dropped payload.
    protocol.close(*protocol.ending)
    protocol.receive_data(close_frame(1009))
    assert protocol.handshake_done


# -- the closing handshake -------------------------------------------------------------------

def test_the_peer_closes_and_gets_its_code_back_after_what_came_before() -> None:
    protocol = new()
    protocol.receive_data(frame(0x81, b"last words") + close_frame(1001, "bye") + frame(0x81, b"ignored"))
    assert list(protocol.messages) == [b"last words"]
    assert protocol.ending == (1001, "bye") and protocol.close_rcvd == (1001, "bye")
    assert sent(protocol) == []  # not answered before the application has handled the message
    protocol.send(b"reply", text=True)
    protocol.close(1000, "handler done")  # the peer's code wins
    assert sent(protocol) == [("text", "reply"), ("close", 1001, "bye")]
    assert protocol.handshake_done and not protocol.awaiting_close


def test_a_close_without_a_code_is_answered_without_one() -> None:
    protocol = new()
    protocol.receive_data(frame(0x88))
    assert protocol.ending == (1000, "")
    protocol.close(*protocol.ending)
    assert protocol.data_to_send() == b"\x88\x00"


def test_a_close_reason_that_is_not_utf8_closes_with_1007() -> None:
    protocol = new()
    protocol.receive_data(frame(0x88, struct.pack("!H", 1000) + b"\xff"))
    assert protocol.ending[0] == 1007


@pytest.mark.parametrize("code", [1000, 1001, 1011, 1013, 3000, 4999])
def test_close_codes_a_peer_may_send(code: int) -> None:
    protocol = new()
    protocol.receive_data(close_frame(code, "r"))
    assert protocol.ending == (code, "r")


def test_our_close_reason_is_cut_on_a_character_boundary() -> None:
    protocol = new()
    protocol.close(4000, "é" * 100)
    [(kind, code, reason)] = sent(protocol)
    assert (kind, code) == ("close", 4000) and reason == "é" * 61  # 122 of the 123 bytes allowed


def test_after_our_close_only_the_peers_close_frame_matters() -> None:
    protocol = new()
    protocol.send(b"queued", text=True)
    protocol.close(1001, "going away")
    protocol.send(b"too late", text=True)
    assert sent(protocol) == [("text", "queued"), ("close", 1001, "going away")]
    assert protocol.awaiting_close
    protocol.receive_data(frame(0x81, b"in flight") + frame(0x89, b"p"))
    assert not protocol.messages and protocol.data_to_send() == b""  # dropped, no pong
    protocol.receive_data(close_frame(1001))
    assert protocol.handshake_done and not protocol.awaiting_close


def test_after_a_violation_the_peers_close_frame_is_still_found() -> None:
    protocol = new()
    protocol.receive_data(frame(0x80, b"lone") + frame(0x81, b"dropped") + frame(0xC2, b"more"))
    assert protocol.ending[0] == 1002 and not protocol.messages
    protocol.close(*protocol.ending)
    protocol.receive_data(close_frame(1002)[:3])
    assert protocol.awaiting_close
    protocol.receive_data(close_frame(1002)[3:])
    assert protocol.handshake_done


def test_the_end_of_the_stream_without_a_close_frame_is_1006_and_sends_nothing() -> None:
    protocol = new()
    protocol.receive_data(frame(0x81, b"x"))
    protocol.receive_eof()
    assert protocol.lost and protocol.ending[0] == 1006 and protocol.state is State.CLOSED
    protocol.close(1000)
    assert protocol.data_to_send() == b""
    assert list(protocol.messages) == [b"x"]  # still handled


# -- keepalive and heartbeats ------------------------------------------------------------------

def test_an_idle_peer_is_pinged_and_dropped_if_it_does_not_answer() -> None:
    protocol = new()
    protocol.tick()
    assert sent(protocol) == [("ping", b"")]
    protocol.tick()
    assert protocol.lost and protocol.ending == (1006, "no pong to the last ping")


def test_a_peer_that_answers_or_talks_is_not_dropped() -> None:
    protocol = new()
    protocol.tick()
    protocol.receive_data(frame(0x8A))
    protocol.tick()  # traffic since the last tick: no ping needed
    assert not protocol.lost and sent(protocol) == [("ping", b"")]
    protocol.tick()
    protocol.receive_data(frame(0x81, b"hello"))
    protocol.tick()
    assert not protocol.lost


def test_the_heartbeat_is_answered_and_not_passed_on() -> None:
    protocol = new(heartbeat="--heartbeat--")
    protocol.receive_data(frame(0x81, b"--heartbeat--") + frame(0x82, b"--heartbeat--"))
    assert list(protocol.messages) == [b"--heartbeat--"]  # the binary one is a message
    assert sent(protocol) == [("text", "--heartbeat--")]


def test_with_ids_the_heartbeat_has_an_empty_id_line() -> None:
    protocol = new(heartbeat="--heartbeat--", ids=True)
    protocol.receive_data(frame(0x81, b"--heartbeat--"))
    assert sent(protocol) == [("text", "\n--heartbeat--")]
    assert wire.parse_frame(b"\n--heartbeat--").data == b"--heartbeat--"


def test_the_server_heartbeat_goes_only_to_sockets_sent_nothing_for_an_interval() -> None:
    protocol = new(heartbeat="hb", idle_heartbeat=True)
    protocol.receive_data(frame(0x8A))  # the peer is alive: no ping either
    protocol.tick()
    assert sent(protocol) == [("text", "hb")]
    protocol.receive_data(frame(0x8A))
    protocol.send(b"news", text=True)
    assert sent(protocol) == [("text", "news")]
    protocol.tick()
    assert sent(protocol) == []  # something went out in that interval
    protocol.receive_data(frame(0x8A))
    protocol.tick()
    assert sent(protocol) == [("text", "hb")]


def test_no_server_heartbeat_without_the_setting_or_on_a_handlers_socket() -> None:
    for protocol in (new(idle_heartbeat=True), new(heartbeat="hb")):
        protocol.receive_data(frame(0x8A))
        protocol.tick()
        assert sent(protocol) == []


def test_with_ids_the_server_heartbeat_has_an_empty_id_line_too() -> None:
    protocol = new(heartbeat="hb", ids=True, idle_heartbeat=True)
    protocol.receive_data(frame(0x8A))
    protocol.tick()
    assert sent(protocol) == [("text", "\nhb")]


# -- rate limit ------------------------------------------------------------------------------

def test_over_the_rate_limit_closes_with_1008_and_passes_nothing_more() -> None:
    now = [0.0]
    protocol = new(rate=10, burst=3, clock=lambda: now[0])
    protocol.receive_data(b"".join(frame(0x81, str(n).encode()) for n in range(3)))
    now[0] = 0.1  # one more token
    protocol.receive_data(frame(0x81, b"3") + frame(0x81, b"4"))
    assert list(protocol.messages) == [b"0", b"1", b"2", b"3"]
    assert protocol.ending == (1008, "over 10 messages per second")


# -- the outbox bound ------------------------------------------------------------------------

def test_the_outbox_bound_in_messages_closes_with_4000_and_drops_the_outbox() -> None:
    stats: dict[str, int] = {}
    protocol = new(outbox_messages=3, stats=stats)
    assert all(protocol.send(b"m", text=True) for _ in range(3))
    assert not protocol.send(b"one too many", text=True)
    assert protocol.overflowed and stats["dropped_messages"] == 3
    assert sent(protocol) == [("close", 4000, "slow consumer: outbox full")]
    assert not protocol.send(b"later", text=True)


def test_the_outbox_bound_in_bytes_and_one_large_message_alone() -> None:
    protocol = new(outbox_bytes=1024)
    assert protocol.send(b"x" * 5000, text=False)  # alone: goes out
    assert not protocol.send(b"y", text=False)
    assert sent(protocol)[-1][:2] == ("close", 4000)


def test_what_was_written_frees_the_outbox() -> None:
    protocol = new(outbox_messages=2)
    for number in range(10):
        assert protocol.send(str(number).encode(), text=True)
        protocol.data_to_send()
    assert protocol.room() == (2, protocol.max_bytes)


# -- delivery rules: echo, ids, replays --------------------------------------------------------

def delivery(**kwargs) -> Delivery:  # noqa: ANN003
    return Delivery(new(), history=True, **kwargs)


def texts(item: Delivery) -> list[str]:
    return [event[1] for event in sent(item.protocol)]


def test_without_echo_the_socket_does_not_get_its_own_message_back() -> None:
    item = Delivery(new(), echo=False)
    item.last_received = b"mine"
    item.deliver(b"mine", True)
    item.deliver(b"theirs", True)
    assert texts(item) == ["theirs"]


def test_with_ids_each_message_has_its_id_line() -> None:
    item = delivery(ids=True)
    item.deliver(b"a", True, "5-0")
    item.deliver(b"raw", True, None)
    assert texts(item) == ["5-0\na", "\nraw"] and item.position == "5-0"


def test_a_replay_comes_before_held_live_messages_and_covers_duplicates() -> None:
    item = delivery(ids=True, resume_from="1-0")
    assert item.needs_start
    item.begin("1-0")
    item.deliver(b"live 3", True, "3-0")  # during the replay: held
    assert texts(item) == []
    item.caught_up(Replay("4-0", False, [("2-0", "c", b"old 2", True), ("3-0", "c", b"live 3", True),
                                         ("4-0", "c", b"old 4", False)]))
    assert sent(item.protocol) == [("text", "2-0\nold 2"), ("text", "3-0\nlive 3"), ("binary", b"4-0\nold 4"),
                                   ("text", "@4-0\n")]
    item.deliver(b"old 4", True, "4-0")  # live, but the replay has sent it
    item.deliver(b"live 5", True, "5-0")
    assert texts(item) == ["5-0\nlive 5"] and item.position == "5-0"


def test_a_replay_that_does_not_fit_keeps_the_newest_and_says_gap() -> None:
    item = Delivery(new(outbox_messages=4), history=True, ids=True)
    item.begin("0-0")
    entries = [(f"{n}-0", "c", f"m{n}".encode(), True) for n in range(1, 10)]
    item.caught_up(Replay("9-0", False, entries))
    assert texts(item) == ["7-0\nm7", "8-0\nm8", "9-0\nm9", "@9-0 gap\n"]


def test_a_gap_is_reported_and_position_never_goes_back() -> None:
    item = delivery(ids=True)
    item.deliver(b"a", True, "7-0")
    assert item.resync_start(None) == "7-0" and item.holding == []
    item.caught_up(Replay("0-0", True, []))  # a Redis that lost its data
    assert texts(item) == ["7-0\na", "@0-0 gap\n"] and item.position == "7-0"


def test_on_several_shards_messages_go_out_in_id_order_after_the_order_delay() -> None:
    # Ids of channels a and b from two shard clocks: 1000 ms on a, 990 and 1005 ms on b. The
    # socket sees <ms>-<sequence × 1024 + the channel's index> (a: 0, b: 1).
    item = delivery(ids=True, order_delay=0.05, channels=["b", "a"])
    item.deliver(b"a", True, "1000-0", "a")
    item.deliver(b"b", True, "990-0", "b")
    item.deliver(b"raw", True, None, "a")  # no id: nothing to order
    assert texts(item) == ["\nraw"] and item.due_in(1.0) == pytest.approx(0.04)
    assert item.release_due(1.045) and texts(item) == ["990-1\nb"]
    item.deliver(b"c", True, "1005-0", "b")
    item.deliver(b"d", True, "1005-0", "a")  # the same id on the other shard: a's goes first
    assert item.release_due(1.06) and texts(item) == ["1000-0\na", "1005-0\nd", "1005-1\nc"]
    assert item.position == "1005-0" and item.due_in(2.0) is None
    item.deliver(b"late", True, "1001-2", "b")  # behind what went out: at once, position kept
    assert texts(item) == ["1001-2049\nlate"] and item.position == "1005-0"


def test_a_socket_ordered_across_channels_resumes_from_the_id_it_saw() -> None:
    channels = ["c", "a", "b"]
    assert resume_start("1005-0", channels) == ("1005-0", {"b", "c"})  # it had a's 1005-0 only
    assert resume_start("1005-2049", channels) == ("1005-2", {"c"})
    assert resume_start("1005-2050", channels) == ("1005-2", set())
    cut = f"1005-{2 ** 64 - 1}"
    assert resume_start(cut, channels) == (cut, set())


def test_on_several_shards_what_a_replay_sent_is_dropped_whatever_comes_between() -> None:
    item = delivery(ids=True, order_delay=0.05, resume_from="1-0", channels=["a", "b"])
    item.begin("1-0")
    item.caught_up(Replay("10-0", False, [("4-0", "a", b"a4", True), ("9-0", "b", b"b9", True)]))
    item.deliver(b"a12", True, "12-0", "a")
    item.deliver(b"b9", True, "9-0", "b")  # another channel's, replayed already
    item.release_due(1.0)
    assert texts(item) == ["4-0\na4", "9-1\nb9", "@10-0\n", "12-0\na12"]
    item.deliver(b"a4", True, "4-0", "a")  # late, and replayed already
    assert texts(item) == []


def test_on_a_cluster_each_channel_drops_only_what_its_own_stream_replayed() -> None:
    # The replay read channel a's stream up to 7-0 and b's (no stream yet) up to nothing, under
    # a cut at 10-0: b's 8-0, added after the read though its clock put it under the cut, comes live.
    item = delivery(ids=True, resume_from="1-0")
    item.begin("1-0")
    item.caught_up(Replay("10-0", False, [("7-0", "a", b"a7", True)], {"a": "7-0", "b": "0-0"}))
    item.deliver(b"a7", True, "7-0", "a")
    item.deliver(b"b8", True, "8-0", "b")
    item.deliver(b"a11", True, "11-0", "a")
    assert texts(item) == ["7-0\na7", "@10-0\n", "8-0\nb8", "11-0\na11"]


def test_a_failed_replay_releases_what_was_held() -> None:
    item = delivery()
    item.begin("1-0")
    item.deliver(b"x", True, "2-0")
    item.release()
    assert texts(item) == ["x"] and item.holding is None


def test_persisted_messages_go_first_unless_they_arrived_live() -> None:
    item = Delivery(new(), history=False)
    item.deliver(b"live", True)
    item.persisted([b"stored", b"live", None, b"\xff"], [None, None, None, None])
    assert sent(item.protocol) == [("text", "stored"), ("binary", b"\xff"), ("text", "live")]


def test_a_persisted_binary_message_that_is_utf8_stays_binary() -> None:
    item = Delivery(new(), history=False)
    marker = wire.binary_marker(b"abc", text=False)
    item.persisted([b"abc"], [marker])
    assert sent(item.protocol) == [("binary", b"abc")]


def test_live_messages_held_beyond_the_outbox_bound_close_with_4000() -> None:
    item = Delivery(new(outbox_messages=2), history=True)
    item.begin("0-0")
    assert item.deliver(b"1", True, "1-0") and item.deliver(b"2", True, "2-0")
    assert not item.deliver(b"3", True, "3-0")
    assert item.protocol.overflowed and item.holding is None


# -- permessage-deflate ------------------------------------------------------------------------

def deflating(offer: str = "permessage-deflate; client_max_window_bits", **kwargs) -> tuple[Protocol, Any]:  # noqa: ANN003
    """A protocol with the compression negotiated for ``offer``, and the client's side of it."""
    answer, deflate = negotiate(offer)
    client = PerMessageDeflate()
    client.finalize(answer)
    return new(deflate=deflate, **kwargs), client


class _Client:
    client = True


def deflated(client: Any, opcode: int, data: bytes) -> bytes:
    """A whole message's payload as the client compresses it."""
    _, payload = client.frame_outbound(_Client(), Opcode(opcode), RsvBits(False, False, False), data, True)
    return payload


def compressed(client: Any, first: int, data: bytes) -> bytes:
    """A whole message as the client compresses it, in one frame with RSV1."""
    return frame(first | 0x40, deflated(client, first & 0x0F, data))


def test_negotiation_answers_the_first_acceptable_offer() -> None:
    assert negotiate(None) is None and negotiate("x-webkit-deflate-frame") is None
    # The server always compresses each message on its own (server_no_context_takeover).
    assert negotiate("permessage-deflate")[0] == "permessage-deflate; server_no_context_takeover"
    assert negotiate("permessage-deflate; client_max_window_bits")[0] == \
        "permessage-deflate; client_max_window_bits=15; server_no_context_takeover"
    assert negotiate("permessage-deflate; server_max_window_bits=8, permessage-deflate; client_no_context_takeover; "
                     "server_max_window_bits=10")[0] == \
        "permessage-deflate; client_no_context_takeover; server_max_window_bits=10; server_no_context_takeover"
    assert negotiate("permessage-deflate; client_max_window_bits=x") is None


def test_compressed_messages_both_ways() -> None:
    protocol, client = deflating()
    for data in [b"hello hello hello", "é".encode() * 300, b""]:
        protocol.receive_data(compressed(client, 0x81, data))
    protocol.receive_data(compressed(client, 0x82, b"\x00" * 900))
    assert list(protocol.messages) == [b"hello hello hello", "é".encode() * 300, b"", b"\x00" * 900]
    assert type(protocol.messages[3]) is BinaryMessage
    protocol.send(b"x" * 900, text=True)
    data = protocol.data_to_send()
    assert data[0] == 0xC1 and len(data) < 100  # FIN, RSV1, text; compressed
    reader = Connection(ConnectionType.CLIENT, extensions=[client])
    reader.receive_data(data)
    assert [event.data for event in reader.events()] == ["x" * 900]


def test_a_compressed_message_in_fragments_with_a_ping_between() -> None:
    protocol, client = deflating()
    payload = deflated(client, 0x1, "fragmented é ".encode() * 40)
    protocol.receive_data(frame(0x41, payload[:3]) + frame(0x89, b"p") + frame(0x00, payload[3:10])
                          + frame(0x80, payload[10:]))
    assert list(protocol.messages) == ["fragmented é ".encode() * 40]
    assert sent(protocol) == [("pong", b"p")]


def test_a_compressed_message_inflating_past_the_limit_closes_with_1009() -> None:
    protocol, client = deflating()
    bomb = compressed(client, 0x82, b"\x00" * 1_000_000)
    assert len(bomb) < 2000
    protocol.receive_data(bomb)
    assert protocol.ending == (1009, f"message over {LIMIT} bytes") and not protocol.messages


def test_invalid_deflate_data_closes_with_1007() -> None:
    protocol, _ = deflating()
    protocol.receive_data(frame(0xC1, b"\xff\xff\xff\xff not deflate"))
    assert protocol.ending[0] == 1007


def test_rsv1_on_a_continuation_or_without_negotiation_closes_with_1002() -> None:
    protocol, _ = deflating()
    protocol.receive_data(frame(0x01, b"a") + frame(0xC0, b"b"))
    assert protocol.ending == (1002, "RSV1 on a continuation or control frame")
    protocol = new()
    protocol.receive_data(frame(0xC1, b"a"))
    assert protocol.ending == (1002, "reserved bits set without an extension")


def test_client_no_context_takeover_starts_each_message_afresh() -> None:
    protocol, client = deflating("permessage-deflate; client_no_context_takeover")
    for _ in range(3):
        protocol.receive_data(compressed(client, 0x81, b"same words again " * 10))
    assert list(protocol.messages) == [b"same words again " * 10] * 3


def test_a_broadcast_compresses_to_the_same_bytes_for_every_socket() -> None:
    (first, _), (second, _) = deflating(), deflating()
    message = b"the same news for everyone " * 20
    for protocol in (first, second):
        protocol.send(message, text=True)
        protocol.send(message, text=True)  # no context kept: the same bytes again
    out = first.data_to_send()
    assert out == second.data_to_send()
    half = len(out) // 2
    assert out[:half] == out[half:]


def test_every_socket_of_a_broadcast_writes_the_same_frame_object() -> None:
    payload = b"broadcast to all"
    frames = []
    for _ in range(3):
        protocol = new()
        assert protocol.send(payload, True)
        frames.append(protocol.data_to_send())
    assert frames[0] == b"\x81\x10" + payload
    assert frames[1] is frames[0] and frames[2] is frames[0]
    other = new()
    other.send(b"broadcast to all", False)  # the same bytes as binary: a frame of its own
    assert other.data_to_send() == b"\x82\x10" + payload
