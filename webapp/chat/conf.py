"""Limits of the chat, with their defaults in one place.

Each can be overridden in the Django settings; a bad value raises ImproperlyConfigured when it
is first used.

    CHAT_MAX_MESSAGE_LENGTH   characters in one message (1000)
    CHAT_HISTORY_PAGE         messages rendered with the page and per older page loaded (50)
    CHAT_RATE_LIMIT           (messages, seconds): at most that many posts per user in any
                              sliding window of that many seconds ((5, 10))
    CHAT_PRESENCE_TTL         seconds a presence entry lives without a refresh (30); a socket
                              refreshes its entry every third of that
"""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class RateLimit:
    messages: int
    seconds: float


def _positive(name: str, default: int) -> int:
    value = getattr(settings, name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(f"{name} must be an integer >= 1, not {value!r}")
    return value


def max_message_length() -> int:
    """Returns CHAT_MAX_MESSAGE_LENGTH; raises ImproperlyConfigured on a bad value."""
    return _positive("CHAT_MAX_MESSAGE_LENGTH", 1000)


def history_page() -> int:
    """Returns CHAT_HISTORY_PAGE; raises ImproperlyConfigured on a bad value."""
    return _positive("CHAT_HISTORY_PAGE", 50)


def presence_ttl() -> int:
    """Returns CHAT_PRESENCE_TTL in seconds; raises ImproperlyConfigured on a bad value."""
    return _positive("CHAT_PRESENCE_TTL", 30)


def rate_limit() -> RateLimit:
    """Returns CHAT_RATE_LIMIT; raises ImproperlyConfigured unless it is (messages >= 1,
    seconds > 0)."""
    value = getattr(settings, "CHAT_RATE_LIMIT", (5, 10))
    try:
        messages, seconds = value
    except (TypeError, ValueError):
        messages = seconds = None
    if (isinstance(messages, bool) or not isinstance(messages, int) or messages < 1
            or isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0):
        raise ImproperlyConfigured(f"CHAT_RATE_LIMIT must be (messages >= 1, seconds > 0), not {value!r}")
    return RateLimit(messages, float(seconds))
