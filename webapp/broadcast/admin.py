"""The admin of broadcasts: adding one sends it at once; an action sends chosen ones again;
deleting one takes it off the pages.

Sending needs the model's add permission (the add view and the action both check it); staff who
may only view or change broadcasts can read the delivery figures but send nothing.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import redis
from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import time_format
from django.utils.html import format_html

from .models import Audience, Broadcast
from .sending import SETTLING, NotSendable, delivery_state, send, withdraw

# Changing these on a sent broadcast leaves open pages with the old copy until it is re-sent.
PUBLISHED_FIELDS = {"message", "level", "audience", "users", "groups", "expires_at"}


class BroadcastForm(forms.ModelForm):
    class Meta:
        model = Broadcast
        fields = ["message", "level", "audience", "users", "groups", "expires_at"]

    def clean_expires_at(self) -> datetime | None:
        expires_at = self.cleaned_data["expires_at"]
        # Only a new expiry: an expired broadcast may still be corrected, for the record.
        if expires_at is not None and "expires_at" in self.changed_data and expires_at <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return expires_at

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        audience = data.get("audience")
        for field, chosen in (("users", Audience.USERS), ("groups", Audience.GROUPS)):
            if audience == chosen and not data.get(field):
                self.add_error(field, f"Choose at least one of the {field} to send to.")
            elif audience != chosen:
                # Recipients of another audience would be kept but never used: drop them.
                data[field] = []
        return data


@admin.register(Broadcast)
class BroadcastAdmin(admin.ModelAdmin):
    form = BroadcastForm
    list_display = ["__str__", "level", "audience", "sender", "sent_at", "expires_at", "sockets_reached"]
    list_filter = ["level", "audience", "sent_at"]
    search_fields = ["message"]
    radio_fields = {"level": admin.HORIZONTAL, "audience": admin.VERTICAL}
    filter_horizontal = ["users", "groups"]
    readonly_fields = ["sender", "sent_at", "sockets_reached"]
    actions = ["resend"]

    def get_fieldsets(self, request: HttpRequest, obj: Broadcast | None = None) -> Any:
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [
            (None, {"fields": ["message", "level"]}),
            ("Audience", {"fields": ["audience", "users", "groups"]}),
            ("Expiry", {"fields": ["expires_at"]}),
        ]
        if obj is not None:
            fieldsets.append(("Delivery", {"fields": ["sender", "sent_at", "sockets_reached"]}))
        return fieldsets

    def save_model(self, request: HttpRequest, obj: Broadcast, form: Any, change: bool) -> None:
        if not change:
            obj.sender = request.user
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Sent here rather than in save_model: the audience's users and groups are saved by now.
        super().save_related(request, form, formsets, change)
        broadcast = form.instance
        if not change:
            self._send(request, [broadcast])
        elif broadcast.sent_at and PUBLISHED_FIELDS.intersection(form.changed_data):
            self.message_user(
                request, "Open pages keep the copy already sent: use “Re-send” to update them.",
                messages.WARNING,
            )

    def delete_model(self, request: HttpRequest, obj: Broadcast) -> None:
        self._withdraw(request, [obj])
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Broadcast]) -> None:
        self._withdraw(request, queryset)
        super().delete_queryset(request, queryset)

    @admin.action(description="Re-send selected broadcasts", permissions=["add"])
    def resend(self, request: HttpRequest, queryset: QuerySet[Broadcast]) -> None:
        self._send(request, queryset)

    @admin.display(description="sockets reached")
    def sockets_reached(self, obj: Broadcast) -> Any:
        """The count of the last copy, "still counting" while workers may add to it, then
        "final" with the time of the last count."""
        try:
            state = delivery_state(obj)
        except redis.RedisError:
            return "unknown (Redis unreachable)"
        if state is None:
            return "—"
        if not state.final:
            return format_html('<span class="delivery" data-state="counting" title="{}">{} '
                               "<small>· still counting</small></span>", f"Reload in {SETTLING} s for the final count",
                               state.count)
        when = (f"last counted {time_format(timezone.localtime(state.last_counted), 'H:i:s')}"
                if state.last_counted else "no open page received it")
        return format_html('<span class="delivery" data-state="final">{} <small>· final, {}</small></span>',
                           state.count, when)

    def _send(self, request: HttpRequest, broadcasts: Iterable[Broadcast]) -> None:
        """Sends each broadcast, and tells the user which were sent and why others were not."""
        sent = []
        for broadcast in broadcasts:
            try:
                send(broadcast)
            except NotSendable as exc:
                self.message_user(request, f"Not sent: {exc}.", messages.ERROR)
            except redis.RedisError as exc:
                self.message_user(request, f"Not sent: “{broadcast}”: Redis is unreachable ({exc}).", messages.ERROR)
            else:
                sent.append(broadcast)
        if len(sent) == 1:
            audience = sent[0].get_audience_display().lower()
            self.message_user(request, f"Sent “{sent[0]}” to {audience}.", messages.SUCCESS)
        elif sent:
            self.message_user(request, f"Sent {len(sent)} broadcasts.", messages.SUCCESS)

    def _withdraw(self, request: HttpRequest, broadcasts: Iterable[Broadcast]) -> None:
        """Takes the sent ones among ``broadcasts`` off the pages, or says why it could not."""
        for broadcast in broadcasts:
            if broadcast.sent_at is None:
                continue
            try:
                withdraw(broadcast)
            except redis.RedisError as exc:
                self.message_user(
                    request, f"“{broadcast}” may stay on pages until it expires: Redis is unreachable ({exc}).",
                    messages.WARNING,
                )
