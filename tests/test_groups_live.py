"""Group changes end to end: a user removed from or added to a group in this process (the signal
fires here) has their open sockets with group flags closed by every WebSocket worker of the
stack (uWSGI + nginx, through Redis), and the next handshake has the new groups."""
import uuid

import pytest
from django.contrib.auth.models import Group
from websockets.exceptions import ConnectionClosed

from ws4redis_server import CloseCode, RedisPublisher
from ws4redis_server.testing import connect


def closed_with(ws, timeout: float = 10) -> tuple[int, str]:  # noqa: ANN001
    """Returns (code, reason) of the server's close frame, failing on any message before it."""
    with pytest.raises(ConnectionClosed) as closed:
        message = ws.recv(timeout=timeout)
        pytest.fail(f"unexpected message {message!r}")
    assert closed.value.rcvd is not None, "no close frame from the server"
    return closed.value.rcvd.code, closed.value.rcvd.reason


def test_group_changes_close_the_users_group_sockets_and_reach_the_next_handshake(
        stack, make_user, login_cookie) -> None:
    facility, name = f"t{uuid.uuid4().hex[:12]}", f"g-{uuid.uuid4().hex[:8]}"
    user = make_user(groups=(name,))
    group = Group.objects.get(name=name)
    cookie = login_cookie(user)
    url = f"{stack.ws_url}/ws/{facility}?subscribe-group&subscribe-broadcast"
    to_group = RedisPublisher(facility=facility, groups=[name])
    to_everyone = RedisPublisher(facility=facility, broadcast=True)

    with connect(url, session=cookie) as member, \
            connect(f"{stack.ws_url}/ws/{facility}?subscribe-broadcast", session=cookie) as no_group_flag, \
            connect(f"{stack.ws_url}/ws/echo/?subscribe-group", session=cookie) as handler:
        assert handler.recv(timeout=10) == "Hello!"
        to_group.publish_message("for the group", expire=0)
        assert member.recv(timeout=10) == "for the group"

        user.groups.remove(group)
        assert closed_with(member) == (CloseCode.GROUPS_CHANGED, "group membership changed; reconnect")
        # The others are still open and served.
        to_everyone.publish_message("still here", expire=0)
        assert no_group_flag.recv(timeout=10) == "still here"
        handler.send("ping")
        assert handler.recv(timeout=10) == "1. ping"

    with connect(url, session=cookie) as former:
        to_group.publish_message("members only", expire=0)
        to_everyone.publish_message("marker", expire=0)
        assert former.recv(timeout=10) == "marker"  # and not the group's message before it

        user.groups.add(group)
        assert closed_with(former)[0] == CloseCode.GROUPS_CHANGED

    with connect(url, session=cookie) as again:
        to_group.publish_message("welcome back", expire=0)
        assert again.recv(timeout=10) == "welcome back"
