"""The demo commands as a reader of a page types them, aimed at the server that sent the page."""
from __future__ import annotations

from django.http import HttpRequest

PYTHON = ".venv/bin/python"  # make run's environment, from the checkout


def demo_command(request: HttpRequest, command: str, *options: str) -> str:
    """Returns the shell line that runs ``manage.py <command> <options>`` against the server that
    answered ``request``: its host and port as the browser reached it."""
    return " ".join((PYTHON, "manage.py", command, "--url", f"ws://{request.get_host()}", *options))
