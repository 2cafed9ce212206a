"""Private messages: the list of conversations, a conversation's page, its history and posting."""
from __future__ import annotations

from typing import Any

from django.contrib import messages as notices
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.db.models import Max
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from .. import events, history
from ..facilities import DIRECT
from ..forms import MessageForm
from ..models import PrivateMessage
from ..posting import post_message, refuse

User = get_user_model()

NOT_YOURSELF = "Private messages go to someone else: choose another user."


def _partners(user: Any) -> list[Any]:
    """Returns the users ``user`` has exchanged private messages with, latest first."""
    last: dict[int, int] = {}
    sent = PrivateMessage.objects.filter(sender=user).values_list("recipient").annotate(last=Max("id"))
    received = PrivateMessage.objects.filter(recipient=user).values_list("sender").annotate(last=Max("id"))
    for other, message_id in [*sent, *received]:
        last[other] = max(last.get(other, 0), message_id)
    users = User.objects.in_bulk(list(last))
    return [users[pk] for pk in sorted(last, key=last.__getitem__, reverse=True) if pk in users]


@login_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """The user's conversations; ``?to=<username>`` opens the one with that user."""
    to = request.GET.get("to", "").strip()
    if to:
        other = User.objects.filter(**{User.USERNAME_FIELD: to}).first()
        if other is None:
            notices.error(request, f"There is no user {to[:150]!r}.")
        elif other.pk == request.user.pk:
            notices.error(request, NOT_YOURSELF)
        else:
            return redirect("chat:direct", other.get_username())
    return render(request, "chat/direct_index.html", {"partners": _partners(request.user)})


@login_required
@require_GET
def conversation(request: HttpRequest, username: str) -> HttpResponse:
    """The page of the conversation between the user and ``username``."""
    other = get_object_or_404(User, **{User.USERNAME_FIELD: username})
    if other.pk == request.user.pk:
        notices.error(request, NOT_YOURSELF)
        return redirect("chat:direct-index")
    between = PrivateMessage.objects.between(request.user, other).select_related("sender", "recipient")
    return render(request, "chat/direct.html", {
        "other": other,
        "page": history.latest(between),
        "form": MessageForm(),
        "facility": DIRECT,
    })


@require_http_methods(["GET", "POST"])
def messages(request: HttpRequest, username: str) -> HttpResponse:
    """GET: a page of the conversation with ``username`` as JSON (``?before=``, ``?after=``).
    POST: sends ``message`` to ``username``."""
    back_url = reverse("chat:direct", args=[username])
    if not request.user.is_authenticated:
        return refuse(request, 403, "Log in to read and send private messages.", back_url)
    other = get_object_or_404(User, **{User.USERNAME_FIELD: username})
    if other.pk == request.user.pk:
        return refuse(request, 400, NOT_YOURSELF, reverse("chat:direct-index"))
    if request.method == "POST":
        return post_message(
            request,
            save=lambda text: PrivateMessage.objects.create(sender=request.user, recipient=other, text=text),
            publish=events.publish_private_message,
            back_url=back_url,
        )
    between = PrivateMessage.objects.between(request.user, other).select_related("sender", "recipient")
    try:
        page = history.page_for(between, request.GET)
    except history.BadCursor as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(page.as_json())
