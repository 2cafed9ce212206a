"""Rooms: the list (and creating one), a room's page, its history and posting, its presence."""
from __future__ import annotations

import redis
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from .. import events, history
from ..facilities import room_facility
from ..forms import MessageForm, RoomForm
from ..models import Message, Room
from ..posting import REDIS_DOWN, post_message, refuse, wants_html
from ..presence import Presence


def _not_a_member(room: Room) -> str:
    return f"Only members of the group {room.group} may read and post in #{room.slug}."


@require_http_methods(["GET", "POST"])
def rooms(request: HttpRequest) -> HttpResponse:
    """Lists the rooms the user may open; a logged-in user may create one (POST)."""
    status = 200
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        form = RoomForm(request.POST, user=request.user)
        if form.is_valid():
            room = form.save(commit=False)
            room.created_by = request.user
            room.save()
            return redirect("chat:room", room.slug)
        status = 400
    else:
        form = RoomForm(user=request.user)
    visible = Room.objects.visible_to(request.user).select_related("group")
    return render(request, "chat/rooms.html", {"rooms": visible, "form": form}, status=status)


@require_GET
def room(request: HttpRequest, slug: str) -> HttpResponse:
    """A room's page: its last messages, who is online, the form to post."""
    room = get_object_or_404(Room.objects.select_related("group"), slug=slug)
    if not room.can_read(request.user):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return render(request, "chat/forbidden.html", {"reason": _not_a_member(room)}, status=403)
    try:
        online: list[str] | None = Presence(room.slug).current().users
    except redis.RedisError:
        online = None
    return render(request, "chat/room.html", {
        "room": room,
        "page": history.latest(room.messages.select_related("author", "room")),
        "online": online,
        "form": MessageForm(),
        "can_post": room.can_post(request.user),
        "facility": room_facility(room.slug),
    })


@require_http_methods(["GET", "POST"])
def messages(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: a page of the room's history as JSON (``?before=<id>``, ``?after=<id>``).
    POST: posts ``message`` as the logged-in user."""
    room = get_object_or_404(Room.objects.select_related("group"), slug=slug)
    back_url = reverse("chat:room", args=[room.slug])
    if request.method == "POST":
        if not request.user.is_authenticated:
            if wants_html(request):
                return redirect_to_login(back_url)
            return refuse(request, 403, "Log in to post.", back_url)
        if not room.can_read(request.user):
            return refuse(request, 403, _not_a_member(room), back_url)
        return post_message(
            request,
            save=lambda text: Message.objects.create(room=room, author=request.user, text=text),
            publish=events.publish_room_message,
            back_url=back_url,
        )
    if not room.can_read(request.user):
        return JsonResponse({"error": _not_a_member(room)}, status=403)
    try:
        page = history.page_for(room.messages.select_related("author", "room"), request.GET)
    except history.BadCursor as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(page.as_json())


@require_GET
def presence(request: HttpRequest, slug: str) -> HttpResponse:
    """Who is online in the room now, as JSON ``{"type": "presence", "version", "users"}``."""
    room = get_object_or_404(Room.objects.select_related("group"), slug=slug)
    if not room.can_read(request.user):
        return JsonResponse({"error": _not_a_member(room)}, status=403)
    try:
        snapshot = Presence(room.slug).current()
    except redis.RedisError:
        return JsonResponse({"error": REDIS_DOWN}, status=503)
    return JsonResponse(snapshot.as_event())
