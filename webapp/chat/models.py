"""Rooms, the messages posted in them, and private messages between two users."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

# Path segments of the chat's own pages, which a room's name would shadow.
RESERVED_SLUGS = frozenset({"direct", "new"})

slug_format = RegexValidator(
    r"\A[a-z0-9]+(?:-[a-z0-9]+)*\Z",
    "Use lowercase letters, digits and single hyphens between them (like team-news).",
    code="invalid_room_name",
)


def not_reserved(value: str) -> None:
    """Raises ValidationError if ``value`` is the name of one of the chat's own pages."""
    if value in RESERVED_SLUGS:
        raise ValidationError("%(value)s is reserved, choose another name.", code="reserved", params={"value": value})


class RoomQuerySet(models.QuerySet["Room"]):
    def visible_to(self, user: Any) -> RoomQuerySet:
        """Returns the public rooms and the rooms of ``user``'s groups."""
        if not user.is_authenticated:
            return self.filter(group__isnull=True)
        return self.filter(Q(group__isnull=True) | Q(group__in=user.groups.all()))


class Room(models.Model):
    slug = models.SlugField("name", max_length=50, unique=True, validators=[slug_format, not_reserved],
                            help_text="Lowercase letters, digits and hyphens; it is the room's address.")
    title = models.CharField(max_length=100, blank=True)
    # PROTECT: deleting the group must neither make the room public nor silently drop its history.
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.PROTECT, related_name="chat_rooms",
                              help_text="Only members of this group may open the room; empty for a public room.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="chat_rooms_created")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RoomQuerySet.as_manager()

    class Meta:
        ordering = ("slug",)

    def __str__(self) -> str:
        return self.slug

    @property
    def name(self) -> str:
        return self.title or self.slug

    @property
    def is_public(self) -> bool:
        return self.group_id is None

    def can_read(self, user: Any) -> bool:
        """Returns whether ``user`` may open the room, read it and receive its messages."""
        if self.group_id is None:
            return True
        return bool(user.is_authenticated and user.groups.filter(pk=self.group_id).exists())

    def can_post(self, user: Any) -> bool:
        """Returns whether ``user`` may post in the room: logged in and allowed to read it."""
        return bool(user.is_authenticated and self.can_read(user))


class Message(models.Model):
    """A message posted in a room; its id is the order the server saved it in."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_messages")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("id",)
        indexes = (models.Index(fields=["room", "id"], name="chat_message_room_id"),)

    def __str__(self) -> str:
        return f"{self.author} in {self.room}: {self.text[:40]}"

    def as_event(self) -> dict[str, Any]:
        """Returns the message as the chat's pages receive it (also in history pages)."""
        return {
            "type": "message",
            "id": self.id,
            "room": self.room.slug,
            "author": self.author.get_username(),
            "text": self.text,
            "created": self.created_at.isoformat(),
        }


class PrivateMessageQuerySet(models.QuerySet["PrivateMessage"]):
    def between(self, user: Any, other: Any) -> PrivateMessageQuerySet:
        """Returns the messages ``user`` and ``other`` sent each other."""
        return self.filter(Q(sender=user, recipient=other) | Q(sender=other, recipient=user))


class PrivateMessage(models.Model):
    """A message from one user to another, seen by the two of them only."""

    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="private_sent")
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                  related_name="private_received")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PrivateMessageQuerySet.as_manager()

    class Meta:
        ordering = ("id",)
        indexes = (
            models.Index(fields=["sender", "recipient", "id"], name="chat_private_pair_id"),
            models.Index(fields=["recipient", "sender", "id"], name="chat_private_pair_rev_id"),
        )

    def __str__(self) -> str:
        return f"{self.sender} to {self.recipient}: {self.text[:40]}"

    def as_event(self) -> dict[str, Any]:
        """Returns the message as the two users' pages receive it."""
        return {
            "type": "private",
            "id": self.id,
            "author": self.sender.get_username(),
            "recipient": self.recipient.get_username(),
            "text": self.text,
            "created": self.created_at.isoformat(),
        }
