"""Forms of the chat: creating a room, posting a message."""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import Group

from .conf import max_message_length
from .models import Room


class RoomForm(forms.ModelForm):
    """A new room. ``group`` offers only the creator's own groups, so nobody locks a room away
    from themselves or opens one to a group they are not in."""

    class Meta:
        model = Room
        fields = ("slug", "title", "group")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        groups = self.fields["group"]
        own = Group.objects.filter(user=user) if user.is_authenticated else Group.objects.none()
        groups.queryset = own.order_by("name")
        groups.label = "Restricted to group"
        groups.empty_label = "Nobody: a public room"
        self.fields["slug"].widget.attrs.update({"placeholder": "team-news", "autocomplete": "off"})

    def clean_slug(self) -> str:
        # Names are addresses: compare and store them in lowercase.
        return self.cleaned_data["slug"].lower()


class MessageForm(forms.Form):
    """A posted message: stripped, not empty, at most CHAT_MAX_MESSAGE_LENGTH characters, no NUL."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Built here, not at import: the limit is a setting that tests and sites may change.
        self.fields["message"] = forms.CharField(
            max_length=max_message_length(), strip=True,
            error_messages={"required": "Write a message first."},
        )

    def error_reason(self) -> str:
        """Returns the first error, as one sentence for the poster."""
        for errors in self.errors.values():
            return str(errors[0])
        return "Invalid message."
