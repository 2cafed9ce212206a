"""The pure core: flags, facility names, channel names with and without prefix, audiences."""
import pytest

from ws4redis_server.channels import (
    Flags,
    Identity,
    InvalidFacility,
    audience_channels,
    channel_name,
    check_facility,
    parse_flags,
)


def test_channel_names_are_ws4redis_names_without_prefix() -> None:
    assert channel_name("", "broadcast", "foobar") == "broadcast:foobar"
    assert channel_name("", "user", "foobar", "john") == "user:john:foobar"
    assert channel_name("", "group", "foobar", "chatters") == "group:chatters:foobar"
    assert channel_name("", "session", "foobar", "abc123") == "session:abc123:foobar"


def test_channel_names_with_prefix() -> None:
    assert channel_name("p:", "broadcast", "foobar") == "p:broadcast:foobar"
    assert channel_name("p:", "user", "foobar", "john") == "p:user:john:foobar"
    assert channel_name("p:", "group", "foobar", "g") == "p:group:g:foobar"
    assert channel_name("p:", "session", "foobar", "k") == "p:session:k:foobar"


def test_channel_name_rejects_unknown_audience_and_missing_key() -> None:
    with pytest.raises(ValueError, match="unknown audience"):
        channel_name("", "everyone", "f")
    with pytest.raises(ValueError, match="needs a key"):
        channel_name("", "user", "f")


@pytest.mark.parametrize("facility", ["foobar", "chat.room-1", "A_b.C-9", "x" * 128])
def test_safe_facilities_pass(facility: str) -> None:
    assert check_facility(facility) == facility


@pytest.mark.parametrize("facility", ["", "a:b", "user:john:x", "a/b", "a b", "é", "x" * 129, "a\nb"])
def test_unsafe_facilities_are_refused(facility: str) -> None:
    with pytest.raises(InvalidFacility, match="invalid facility"):
        check_facility(facility)


def test_parse_flags_reads_ws4redis_flags_and_ignores_unknown_ones() -> None:
    flags = parse_flags("subscribe-broadcast&publish-user&echo&bogus&Subscribe-Group&last-id=17")
    assert flags.subscribe == {"broadcast", "group"}
    assert flags.publish == {"user"}
    assert flags.echo is True
    assert flags.params == {"last-id": "17"}
    assert parse_flags("") == Flags()
    assert parse_flags("subscribe-everyone&publish-").subscribe == frozenset()


def test_flag_names_round_trip_and_restriction() -> None:
    flags = parse_flags("subscribe-broadcast&subscribe-user&publish-broadcast&echo")
    # What a ws4redis hook got: the channel flags, without echo.
    assert flags.names() == ["subscribe-broadcast", "subscribe-user", "publish-broadcast"]
    limited = flags.restricted_to(["subscribe-user", "publish-broadcast"])
    assert limited.subscribe == {"user"} and limited.publish == {"broadcast"} and limited.echo
    # A hook written as in ws4redis's documentation keeps echo: it never saw it.
    kept = flags.restricted_to(set(flags.names()).intersection(["subscribe-broadcast", "publish-broadcast"]))
    assert kept.subscribe == {"broadcast"} and kept.echo
    # Nothing left to publish, nothing to echo.
    assert not flags.restricted_to(["subscribe-user"]).echo


def test_audiences_resolve_only_to_the_sockets_own_identity() -> None:
    me = Identity("john", ("staff", "chatters"), "sess1")
    every = frozenset({"broadcast", "user", "group", "session"})
    assert audience_channels("", "f", every, me) == [
        "broadcast:f", "user:john:f", "group:staff:f", "group:chatters:f", "session:sess1:f",
    ]
    anonymous = Identity(None, (), None)
    assert audience_channels("", "f", every, anonymous) == ["broadcast:f"]
    assert audience_channels("p:", "f", frozenset({"user"}), me) == ["p:user:john:f"]
