from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from webapp.home.commands import demo_command


def page(request: HttpRequest) -> HttpResponse:
    """The echo page: the ``testecho`` transcript, by hand, in the browser."""
    command = demo_command(request, "testecho", "--clients", "1000", "--delay", "5")
    return render(request, "echo/page.html", {"command": command})
