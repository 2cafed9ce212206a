"""Django views of the WebSocket loop's figures: Prometheus's endpoint and a live page for people.

Served by the Django instance (the WebSocket workers report to Redis, see ``metrics``); route
them in the project's urls.py, e.g. ``path("ws-stats/", include("ws4redis_server.urls"))``.
"""
from __future__ import annotations

import time

import redis
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from . import metrics


def _snapshot() -> dict[str, dict[str, int]] | None:
    try:
        return metrics.snapshot()
    except redis.RedisError:
        return None


@never_cache
def prometheus(request: HttpRequest) -> HttpResponse:
    """Every worker's figures in Prometheus's text format; 503 if Redis cannot be read, 501 if
    prometheus_client is not installed (the extra ``[prometheus]``)."""
    workers = _snapshot()
    if workers is None:
        return HttpResponse("Redis unavailable: no figures\n", status=503, content_type="text/plain")
    try:
        body = metrics.exposition(workers)
    except metrics.PrometheusMissing as exc:
        return HttpResponse(f"{exc}\n", status=501, content_type="text/plain")
    return HttpResponse(body, content_type="text/plain; version=0.0.4; charset=utf-8")


@never_cache
def stats_json(request: HttpRequest) -> JsonResponse:
    """Every worker's figures and their totals, for the live page; 503 if Redis cannot be read."""
    workers = _snapshot()
    if workers is None:
        return JsonResponse({"error": "Redis unavailable"}, status=503)
    totals: dict[str, int] = {}
    for figures in workers.values():
        for name, value in figures.items():
            if name not in metrics.TIMESTAMPS:
                totals[name] = max(totals.get(name, 0), value) if name == "outbox_high_water" \
                    else totals.get(name, 0) + value
    return JsonResponse({"time": time.time(), "workers": workers, "totals": totals})


def stats_page(request: HttpRequest) -> HttpResponse:
    return render(request, "ws4redis/stats.html", {"names": metrics.HELP})
