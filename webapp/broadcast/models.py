"""A broadcast: a banner that staff send from the admin to every open page, or to chosen users or
groups, and that pages opened before it expires still show."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ws4redis_server import get_settings

MAX_MESSAGE_LENGTH = 2000


class Level(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class Audience(models.TextChoices):
    EVERYONE = "everyone", "Everyone"
    USERS = "users", "Chosen users"
    GROUPS = "groups", "Chosen groups"


def default_lifetime() -> timedelta:
    """How long a broadcast without an expiry stays visible to pages opened after it was sent:
    as long as its message is persisted in Redis (``WS4REDIS_EXPIRE``)."""
    return timedelta(seconds=get_settings().expire)


class BroadcastQuerySet(models.QuerySet["Broadcast"]):
    def live(self, now: datetime | None = None) -> BroadcastQuerySet:
        """Returns the broadcasts that were sent and are still visible at ``now``."""
        now = now or timezone.now()
        return self.filter(
            Q(expires_at__gt=now) | Q(expires_at__isnull=True, sent_at__gt=now - default_lifetime()),
            sent_at__isnull=False,
        )

    def visible_to(self, user: Any) -> BroadcastQuerySet:
        """Returns the broadcasts addressed to ``user`` (everyone's, and for a logged-in user
        those naming them or one of their groups)."""
        if user is None or not user.is_authenticated:
            return self.filter(audience=Audience.EVERYONE)
        return self.filter(
            Q(audience=Audience.EVERYONE)
            | Q(audience=Audience.USERS, users=user)
            | Q(audience=Audience.GROUPS, groups__in=user.groups.all())
        ).distinct()


class Broadcast(models.Model):
    message = models.TextField(max_length=MAX_MESSAGE_LENGTH)
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    audience = models.CharField(max_length=10, choices=Audience.choices, default=Audience.EVERYONE)
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="broadcasts_received",
        help_text="The recipients when the audience is “Chosen users”.",
    )
    groups = models.ManyToManyField(
        Group, blank=True, related_name="broadcasts_received",
        help_text="The recipients when the audience is “Chosen groups”.",
    )
    expires_at = models.DateTimeField(
        "expires", null=True, blank=True,
        help_text="When the banner disappears. Left empty, pages opened within WS4REDIS_EXPIRE "
                  "seconds (an hour by default) of sending still show it.",
    )
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, editable=False, on_delete=models.SET_NULL,
        related_name="broadcasts_sent",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField("sent", null=True, blank=True, editable=False)
    # The id of the last published copy, under which the WebSocket servers count deliveries.
    receipt_id = models.CharField(max_length=64, blank=True, editable=False)

    objects = BroadcastQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        text = " ".join(self.message.split())
        return text if len(text) <= 60 else f"{text[:59]}…"

    def as_payload(self) -> dict[str, Any]:
        """Returns what pages receive: the JSON-ready id, message, level and expiry (ISO 8601,
        or None when the broadcast has no expiry of its own)."""
        return {
            "id": self.pk,
            "message": self.message,
            "level": self.level,
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }
