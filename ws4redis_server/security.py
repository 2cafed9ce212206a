"""What protects the loop from other sites and from abusive clients: the ``Origin`` check of the
handshake (cross-site WebSocket hijacking), the rule on anonymous publishing, and the per-socket
inbound rate limit. Plain Python, no I/O.

Browsers always send ``Origin`` with a WebSocket handshake and let any page open a socket to any
site, cookies included: without this check, a page elsewhere could read a logged-in user's
private channels. Clients that are not browsers send no ``Origin`` and are not subject to it.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

# What Django itself accepts as Host when DEBUG is on and ALLOWED_HOSTS is empty.
DEBUG_HOSTS = (".localhost", "127.0.0.1", "[::1]")


@dataclass(frozen=True)
class OriginPolicy:
    """The origins a browser page may open sockets from.

    ``hosts``: ALLOWED_HOSTS patterns (any scheme and port). ``exact``: whole origins
    (``scheme://host[:port]``). ``wildcards``: (scheme, ``.domain[:port]``) from ``*.`` entries.
    ``any_origin``: the check is off (``WS4REDIS_ALLOWED_ORIGINS = ["*"]``).
    """

    hosts: tuple[str, ...] = ()
    exact: frozenset[str] = frozenset()
    wildcards: tuple[tuple[str, str], ...] = ()
    any_origin: bool = False

    def allows(self, origin: str) -> bool:
        """True if a page at ``origin`` (the header's value) may open a socket here."""
        if self.any_origin:
            return True
        origin = origin.strip().lower()
        if origin in self.exact:
            return True
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" (sandboxed frames, file://) and the like are nobody's site
        if any(scheme == parts.scheme and is_same_domain(parts.netloc, domain)
               for scheme, domain in self.wildcards):
            return True
        host, _ = split_domain_port(parts.netloc)
        return bool(host) and validate_host(host, list(self.hosts))


def _origins(name: str, values: Any) -> tuple[frozenset[str], tuple[tuple[str, str], ...]]:
    if isinstance(values, str) or not isinstance(values, (list, tuple, set, frozenset)):
        raise ImproperlyConfigured(f"{name} must be a list of origins, not {values!r}")
    exact, wildcards = set(), []
    for value in values:
        parts = urlsplit(value) if isinstance(value, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc \
                or parts.path not in ("", "/") or parts.query:
            raise ImproperlyConfigured(
                f"{name} entries must look like 'https://example.com[:port]' "
                f"(or 'https://*.example.com'), not {value!r}")
        netloc = parts.netloc.lower()
        if netloc.startswith("*."):
            wildcards.append((parts.scheme, netloc[1:]))
        else:
            exact.add(f"{parts.scheme}://{netloc}")
    return frozenset(exact), tuple(wildcards)


def origin_policy(allowed_origins: Any, allowed_hosts: Iterable[str], csrf_trusted_origins: Iterable[str],
                  debug: bool) -> OriginPolicy:
    """Returns the OriginPolicy for ``WS4REDIS_ALLOWED_ORIGINS`` (a list of origins, ``["*"]``
    for any, or None for the default: the hosts of ``ALLOWED_HOSTS`` on any scheme and port, plus
    ``CSRF_TRUSTED_ORIGINS``). Raises ImproperlyConfigured on a malformed entry."""
    if allowed_origins is not None:
        if isinstance(allowed_origins, (list, tuple)) and list(allowed_origins) == ["*"]:
            return OriginPolicy(any_origin=True)
        exact, wildcards = _origins("WS4REDIS_ALLOWED_ORIGINS", allowed_origins)
        return OriginPolicy(exact=exact, wildcards=wildcards)
    hosts = tuple(allowed_hosts) or (DEBUG_HOSTS if debug else ())
    exact, wildcards = _origins("CSRF_TRUSTED_ORIGINS", list(csrf_trusted_origins))
    return OriginPolicy(hosts=hosts, exact=exact, wildcards=wildcards)


def anonymous_publish(value: Any) -> bool | frozenset[str]:
    """Returns ``WS4REDIS_ANONYMOUS_PUBLISH`` validated: True, False, or the facilities on which
    anonymous sockets may publish. Raises ImproperlyConfigured otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(item, str) and item for item in value):
        return frozenset(value)
    raise ImproperlyConfigured(
        f"WS4REDIS_ANONYMOUS_PUBLISH must be True, False or a list of facility names, not {value!r}")


def may_publish_anonymously(policy: bool | frozenset[str], facility: str) -> bool:
    return policy if isinstance(policy, bool) else facility in policy


class RateLimit:
    """A token bucket: ``rate`` messages per second on average, ``burst`` at once."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def allow(self) -> bool:
        """Takes a token; False if the bucket is empty (the message is over the limit)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
