"""Who may do what with sockets on facility ``broadcast`` (the ``WS4REDIS_ALLOWED_CHANNELS`` hook).

Pages only listen there: broadcasts are sent from the admin, by staff allowed to add them. A
socket that could publish on the facility would put banners on every page, so it is refused.
"""
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from .sending import FACILITY


def allowed_channels(request: HttpRequest, flags: list[str]) -> list[str]:
    """Returns ``flags`` as they are; raises PermissionDenied (HTTP 403 before the upgrade) when
    a socket on facility ``broadcast`` asks to publish."""
    if getattr(request, "ws4redis_facility", None) == FACILITY:
        refused = [flag for flag in flags if flag.startswith("publish-")]
        if refused:
            raise PermissionDenied(
                f"facility {FACILITY!r} is read-only ({', '.join(refused)} refused): "
                "broadcasts are sent from the admin"
            )
    return flags
