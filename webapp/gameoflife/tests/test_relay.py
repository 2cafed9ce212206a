"""The relay's fan-out, in memory: a listener gets one frame per generation, when it is complete."""
from __future__ import annotations

from webapp.gameoflife.relay import Listening, Relay
from ws4redis_server import Hub


class Frames:
    """Stands in for a socket: keeps what is sent to it."""

    def __init__(self) -> None:
        self.sent: list[list[str]] = []

    def send(self, text: str) -> None:
        self.sent.append(text.split())


def test_a_listener_gets_a_generation_in_one_frame_once_it_is_complete():
    ws = Frames()
    listening = Listening(ws, ["1", "2", "3"])
    listening.receive("1:0:1", "0")
    listening.receive("2:0:0", "0")
    assert ws.sent == []
    listening.receive("3:0:1", "0")
    assert ws.sent == [["1:0:1", "2:0:0", "3:0:1"]]


def test_states_of_the_next_generation_count_once_the_cell_has_moved_on():
    ws = Frames()
    listening = Listening(ws, ["1", "2", "3"])
    for token in ("1:0:1", "1:1:0", "2:0:1", "3:0:0"):  # cell 1 is a generation ahead
        listening.receive(token, token.split(":")[1])
    assert ws.sent == [["1:0:1", "1:1:0", "2:0:1", "3:0:0"]]
    listening.sent("1")  # the cell sent generation 1: it waits for 2:1 and 3:1 only
    listening.receive("2:1:1", "1")
    assert len(ws.sent) == 1
    listening.receive("3:1:1", "1")
    assert ws.sent[-1] == ["2:1:1", "3:1:1"]


def test_a_generation_complete_before_the_cell_sends_its_own_goes_out_when_it_does():
    ws = Frames()
    listening = Listening(ws, ["1", "2"])
    for token in ("1:0:1", "2:0:1"):
        listening.receive(token, "0")
    listening.sent("0")
    listening.sent("1")
    for token in ("1:1:1", "1:2:0", "2:1:0"):
        listening.receive(token, token.split(":")[1])
    assert ws.sent == [["1:0:1", "2:0:1"], ["1:1:1", "1:2:0", "2:1:0"]]
    listening.receive("2:2:1", "2")
    assert len(ws.sent) == 2  # the cell has not sent generation 2 yet
    listening.sent("2")
    assert ws.sent[-1] == ["2:2:1"]


def test_the_relay_fans_a_batch_out_to_each_subscription_repeats_included():
    relay = Relay(Hub(), "test-channel")
    relay.adopt(1)
    left, right = Frames(), Frames()
    relay.listen(left, ["7", "7", "8"])
    relay.listen(right, ["8"])
    relay.deliver("test-channel", b"states 1 7:0:1 8:0:0 9:0:1", True)
    assert left.sent == [["7:0:1", "7:0:1", "8:0:0"]]
    assert right.sent == [["8:0:0"]]
    relay.deliver("test-channel", b"states 0 8:1:1", True)  # another run's: ignored
    assert right.sent == [["8:0:0"]]


def test_a_queue_is_sent_as_it_is_once_it_stands_still_not_while_it_fills(monkeypatch):
    import gevent

    from webapp.gameoflife import relay as relay_module

    monkeypatch.setattr(relay_module, "MAX_WAIT", 0.5)
    relay = Relay(Hub(), "test-channel")
    relay.adopt(1)
    ws = Frames()
    relay.listen(ws, [str(index) for index in range(1, 21)])
    for index in range(1, 19):  # a state every 0.1 s for 1.8 s: slow, but moving
        relay.deliver("test-channel", f"states 1 {index}:0:1".encode(), True)
        gevent.sleep(0.1)
    assert ws.sent == []
    gevent.sleep(1.2)  # then nothing: cells 19 and 20 may have stopped
    assert ws.sent == [[f"{index}:0:1" for index in range(1, 19)]]
