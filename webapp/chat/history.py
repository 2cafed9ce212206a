"""Pages of a conversation's history, by message id (the order the server saved them in)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.http import QueryDict

from .conf import history_page

_ID = re.compile(r"[0-9]{1,18}")


class BadCursor(ValueError):
    """``before``/``after`` is not a positive integer, or both are given."""


@dataclass(frozen=True)
class Page:
    messages: list[Any]
    more: bool  # older messages remain (``older``), or newer ones (``newer``)

    def as_json(self) -> dict[str, Any]:
        return {"messages": [message.as_event() for message in self.messages], "more": self.more}


def latest(queryset: QuerySet) -> Page:
    """Returns the last CHAT_HISTORY_PAGE messages, oldest first; ``more`` if older ones exist."""
    return older(queryset, None)


def older(queryset: QuerySet, before: int | None) -> Page:
    """Returns the CHAT_HISTORY_PAGE messages before id ``before`` (the latest if None), oldest
    first; ``more`` if there are older ones still."""
    size = history_page()
    if before is not None:
        queryset = queryset.filter(id__lt=before)
    items = list(queryset.order_by("-id")[: size + 1])
    return Page(items[:size][::-1], len(items) > size)


def newer(queryset: QuerySet, after: int) -> Page:
    """Returns up to CHAT_HISTORY_PAGE messages after id ``after``, oldest first; ``more`` if
    there are newer ones still (ask again after the last)."""
    size = history_page()
    items = list(queryset.filter(id__gt=after).order_by("id")[: size + 1])
    return Page(items[:size], len(items) > size)


def page_for(queryset: QuerySet, params: QueryDict) -> Page:
    """Returns the page ``?before=<id>`` or ``?after=<id>`` asks for (the latest without either);
    raises BadCursor."""
    before, after = _cursor(params, "before"), _cursor(params, "after")
    if before is not None and after is not None:
        raise BadCursor("give before or after, not both")
    if after is not None:
        return newer(queryset, after)
    return older(queryset, before)


def _cursor(params: QueryDict, name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if not _ID.fullmatch(value):
        raise BadCursor(f"{name} must be a message id (a positive integer), not {value[:20]!r}")
    return int(value)
