"""The peer's two sockets: a broadcast listener (a group member) and the echo transcript."""
from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

GROUP = "bench"
ROUNDS = 3


class BroadcastConsumer(AsyncWebsocketConsumer):
    """Joins the ``bench`` group; relays every ``bench.message`` event as a text frame."""

    groups = [GROUP]

    async def bench_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


class EchoConsumer(AsyncWebsocketConsumer):
    """The echo handler's transcript: ``Hello!``, ``1. <msg>`` ... ``3. <msg>``, ``Goodbye!``."""

    async def connect(self) -> None:
        self.replies = 0
        await self.accept()
        await self.send(text_data="Hello!")

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.replies += 1
        await self.send(text_data=f"{self.replies}. {text_data}")
        if self.replies == ROUNDS:
            await self.send(text_data="Goodbye!")
            await self.close()
