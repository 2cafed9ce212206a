"""The page that watches the Game of Life live."""
import redis
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from webapp.home.commands import demo_command

from . import runs


def watch(request: HttpRequest) -> HttpResponse:
    """The grid of the current run, drawn live from the runs' channel (the page resets itself
    when a new run starts)."""
    try:
        run = runs.current_run()
    except redis.RedisError:
        run = None  # the page still loads; its socket retries until Redis is back
    return render(request, "gameoflife/watch.html",
                  {"run": run, "command": demo_command(request, "gameoflife", "-s", "32", "-l", "5")})
