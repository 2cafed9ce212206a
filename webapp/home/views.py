"""The home page (links to every demo) and the pub/sub demo page of the JS client."""
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_POST

from ws4redis_server import RedisMessage, RedisPublisher

DEMOS = [
    ("Echo (C10k)", "/echo/", "A WebSocket handler: ws.send(ws.recv()), the testecho load test's server."),
    ("Game of Life", "/gameoflife/", "Every cell is its own WebSocket client; the server only relays."),
    ("Chat", "/chat/", "Rooms, accounts, history, presence, private messages."),
    ("Pub/sub", "/pubsub/", "The ws4redis facilities: subscribe and publish from the browser and from Django."),
    ("Admin broadcast", "/admin/broadcast/broadcast/", "Send a banner to every open page from the Django admin."),
    ("WebSocket figures", "/ws-stats/", "Sockets open, messages in and out, drops, Redis reconnects, per worker."),
]

MAX_DEMO_MESSAGE = 1000


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "home/index.html", {"demos": DEMOS})


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask every site for /favicon.ico: nginx serves it from the static files; under
    runserver, or another front server, this sends them there."""
    return redirect(static("favicon.ico"), permanent=True)


@ensure_csrf_cookie
def pubsub(request: HttpRequest) -> HttpResponse:
    return render(request, "home/pubsub.html", {"facility": "demo"})


@require_POST
def publish(request: HttpRequest) -> HttpResponse:
    """Publish the posted ``message`` to everyone subscribed to facility ``demo``, from Django."""
    message = request.POST.get("message", "").strip()
    if not message:
        return HttpResponseBadRequest("message is required")
    if len(message) > MAX_DEMO_MESSAGE:
        return HttpResponseBadRequest(f"message is longer than {MAX_DEMO_MESSAGE} characters")
    RedisPublisher(facility="demo", broadcast=True).publish_message(RedisMessage(f"[django] {message}"), expire=0)
    return JsonResponse({"published": message})
