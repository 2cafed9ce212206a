"""A plain redis-py subscription to ws4redis channels: what a ws4redis 0.6.0 server or any other
service of a site sees on Redis. Absences are proved with a marker published after."""
from __future__ import annotations

from typing import Any

MARKER = b"-- marker --"


class PlainSubscriber:
    """``pubsub().subscribe(*channels)``, with the confirmations read, so nothing published after
    the constructor returns is missed."""

    def __init__(self, client: Any, *channels: str) -> None:
        self.client = client
        self.channels = channels
        self.pending: dict[str, list[bytes]] = {}
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(*channels)
        confirmed = 0
        while confirmed < len(channels):
            reply = self.pubsub.parse_response(block=False, timeout=10)
            assert reply is not None, "Redis did not confirm the subscriptions"
            confirmed += reply[0] == b"subscribe"

    def until_marker(self, channel: str) -> list[bytes]:
        """Publishes MARKER raw on ``channel`` and returns every payload read on ``channel``
        before it (payloads read meanwhile on the other channels wait for their own call)."""
        self.client.publish(channel, MARKER)
        found = self.pending.pop(channel, [])
        while True:
            message = self.pubsub.get_message(timeout=10)
            assert message is not None, f"the marker did not come back on {channel}; read {found}"
            name = message["channel"].decode()
            if name != channel:
                self.pending.setdefault(name, []).append(message["data"])
            elif message["data"] == MARKER:
                return found
            else:
                found.append(message["data"])

    def nothing(self) -> None:
        """Checks that nothing more came on any channel: a marker on each comes back first."""
        for channel in self.channels:
            assert self.until_marker(channel) == [], f"unexpected messages on {channel}"

    def close(self) -> None:
        self.pubsub.close()
