"""``{% broadcast_banners %}``: the broadcasts a page shows when it opens, for the banner script.

Redis persists only the last message of a channel, so a page opened while several broadcasts are
live learns of them from the page itself; the socket then brings the ones sent afterwards.
"""
from typing import Any

from django import template

from ..models import Broadcast
from ..sending import FACILITY

register = template.Library()


@register.inclusion_tag("broadcast/live.html", takes_context=True)
def broadcast_banners(context: template.Context) -> dict[str, Any]:
    """Renders, as JSON for the banner script, the facility and the live broadcasts addressed to
    the page's user (oldest first)."""
    live = Broadcast.objects.live().visible_to(context.get("user")).order_by("sent_at")
    return {"config": {"facility": FACILITY, "live": [broadcast.as_payload() for broadcast in live]}}
