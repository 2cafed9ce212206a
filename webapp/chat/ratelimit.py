"""Per-user rate limit on posting: a sliding window kept in Redis.

Each accepted post adds its time to a sorted set per user; a post is refused while the set holds
``messages`` entries younger than ``seconds``. One Lua script does the check and the insert, so
the limit holds across every Django worker process and host.
"""
from __future__ import annotations

import time
import uuid

from ws4redis_server import get_redis

from .conf import RateLimit, rate_limit

KEY = "chat:rate:{user_id}"

# KEYS[1] the user's window; ARGV now, window seconds, limit, a unique member.
# Returns nil when the post is allowed (and counted), else the seconds until one is.
_ACQUIRE = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(window))
return false
"""


class RateLimited(Exception):
    """The user posted too often: retry after ``retry_after`` seconds."""

    def __init__(self, limit: RateLimit, retry_after: float) -> None:
        self.limit = limit
        self.retry_after = retry_after
        seconds = f"{limit.seconds:g}"
        super().__init__(
            f"You are posting too fast: at most {limit.messages} messages every {seconds} seconds. "
            f"Try again in {max(1, round(retry_after))} s."
        )


def acquire(user_id: int) -> None:
    """Counts one post of ``user_id``; raises RateLimited if it is over CHAT_RATE_LIMIT
    (then nothing is counted) and redis.RedisError if Redis cannot be reached."""
    limit = rate_limit()
    script = get_redis().register_script(_ACQUIRE)
    retry_after = script(keys=[KEY.format(user_id=user_id)],
                         args=[repr(time.time()), repr(limit.seconds), limit.messages, uuid.uuid4().hex])
    if retry_after is not None:
        raise RateLimited(limit, float(retry_after))
