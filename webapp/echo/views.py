from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def page(request: HttpRequest) -> HttpResponse:
    """The echo page: the ``testecho`` transcript, by hand, in the browser."""
    return render(request, "echo/page.html")
