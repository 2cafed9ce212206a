"""Posting a message over HTTP: validate, rate-limit, save, publish; or answer why not.

The chat's pages post with ``fetch`` and ``Accept: application/json`` and get JSON back: the
saved message (201) or ``{"error": reason}`` with 400, 403, 429 or 503. A plain form post (no
JavaScript) is redirected back to the conversation, or gets a short page with the same status
and reason.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import redis
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render

from . import ratelimit
from .forms import MessageForm

REDIS_DOWN = "The chat cannot deliver messages right now (Redis is unreachable); try again shortly."


def wants_html(request: HttpRequest) -> bool:
    """Returns whether the client is a browser form post rather than the page's script."""
    return "text/html" in request.headers.get("Accept", "")


def refuse(request: HttpRequest, status: int, reason: str, back_url: str) -> HttpResponse:
    """Answers ``status`` with ``reason``: JSON for scripts, a small page for browsers."""
    if wants_html(request):
        return render(request, "chat/refused.html", {"reason": reason, "back_url": back_url}, status=status)
    return JsonResponse({"error": reason}, status=status)


def post_message(request: HttpRequest, save: Callable[[str], Any], publish: Callable[[Any], None],
                 back_url: str) -> HttpResponse:
    """Handles a posted ``message`` of the logged-in ``request.user``: validates it, counts it
    against CHAT_RATE_LIMIT, ``save(text)``s it and ``publish``es what was saved."""
    form = MessageForm(request.POST)
    if not form.is_valid():
        return refuse(request, 400, form.error_reason(), back_url)
    try:
        ratelimit.acquire(request.user.pk)
    except ratelimit.RateLimited as exc:
        response = refuse(request, 429, str(exc), back_url)
        response["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return response
    except redis.RedisError:
        return refuse(request, 503, REDIS_DOWN, back_url)
    message = save(form.cleaned_data["message"])
    publish(message)
    if wants_html(request):
        return redirect(back_url, permanent=False)
    return JsonResponse(message.as_event(), status=201)
