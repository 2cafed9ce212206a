"""Who is online in a room, kept in Redis so every WebSocket worker process shares it.

Each open room page holds one presence socket; each socket is one entry ``<username>\\n<id>`` in
a sorted set per room, scored by the time it expires. Sockets refresh their entry while open and
remove it when they close; entries of a worker that crashed expire on their own. Several tabs of
one user are several entries but one name.

A single Lua script changes the set, drops expired entries, computes the sorted names and, when
they differ from the last snapshot, stores and publishes the new snapshot on the room's channel
with a higher version. Redis runs scripts one at a time, so snapshots are published in version
order whichever worker computes them; pages keep the highest version they have seen.

On a Redis Cluster the hubs listen with SSUBSCRIBE, so the script SPUBLISHes there (PUBLISH
elsewhere), and both keys carry the room's channel as their hash tag: the keys and the channel
share one slot, which a script that publishes on a shard channel needs.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from ws4redis_server import get_redis
from ws4redis_server.history import is_cluster
from ws4redis_server.wire import tagged

from .conf import presence_ttl
from .facilities import room_channel

SNAPSHOT_TTL = 86400  # seconds; versions stay increasing after it lapses (they start at now in ms)

# KEYS[1] entries, KEYS[2] last snapshot. ARGV: now, op (add|remove|none), member, expires at,
# channel, snapshot ttl, the publishing command (PUBLISH, or SPUBLISH on a Redis Cluster).
# Returns {version, users as a JSON array}.
_UPDATE = r"""
local now = tonumber(ARGV[1])
if ARGV[2] == 'add' then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
elseif ARGV[2] == 'remove' then
  redis.call('ZREM', KEYS[1], ARGV[3])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local seen, names = {}, {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local name = string.match(member, '^(.*)\n')
  if name and not seen[name] then
    seen[name] = true
    names[#names + 1] = name
  end
end
table.sort(names)
local encoded = {}
for i, name in ipairs(names) do encoded[i] = cjson.encode(name) end
local users = '[' .. table.concat(encoded, ',') .. ']'
local last = redis.call('HMGET', KEYS[2], 'users', 'version')
local version = tonumber(last[2]) or 0
if (last[1] or '[]') ~= users then
  version = math.max(version + 1, math.floor(now * 1000))
  redis.call('HSET', KEYS[2], 'users', users, 'version', string.format('%d', version))
  redis.call(ARGV[7], ARGV[5],
    '{"type":"presence","version":' .. string.format('%d', version) .. ',"users":' .. users .. '}')
end
redis.call('EXPIRE', KEYS[2], ARGV[6])
-- The set itself goes when its last entry would have expired (a room everybody left abruptly).
local latest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if latest[2] then redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(latest[2]) - now) + 1) end
return {string.format('%d', version), users}
"""


def entries_key(slug: str) -> str:
    """The sorted set of the room ``slug``'s sockets, in its channel's slot."""
    return tagged("chat:presence:", room_channel(slug))


def snapshot_key(slug: str) -> str:
    """The room ``slug``'s last snapshot, in its channel's slot."""
    return entries_key(slug) + ":snapshot"


@dataclass(frozen=True)
class Snapshot:
    """Who is online in a room; a higher ``version`` is a newer snapshot."""

    version: int
    users: list[str]

    def as_event(self) -> dict[str, Any]:
        return {"type": "presence", "version": self.version, "users": self.users}


class Presence:
    """The presence of one room. Every method returns the current Snapshot and publishes it
    on the room's channel if it changed; they raise redis.RedisError if Redis is unreachable."""

    def __init__(self, slug: str) -> None:
        self.slug = slug
        self.ttl: float = presence_ttl()

    def join(self, username: str, connection_id: str) -> Snapshot:
        """Counts the socket ``connection_id`` of ``username`` for the next CHAT_PRESENCE_TTL
        seconds."""
        return self._update("add", self._member(username, connection_id))

    # Refreshing is joining again: the entry's expiry moves forward.
    refresh = join

    def leave(self, username: str, connection_id: str) -> Snapshot:
        """Stops counting the socket ``connection_id`` of ``username``."""
        return self._update("remove", self._member(username, connection_id))

    def current(self) -> Snapshot:
        """Returns who is online now (dropping expired entries)."""
        return self._update("none", "")

    @staticmethod
    def _member(username: str, connection_id: str) -> str:
        return f"{username}\n{connection_id}"

    def _update(self, op: str, member: str) -> Snapshot:
        now = time.time()
        client = get_redis()
        script = client.register_script(_UPDATE)
        channel = room_channel(self.slug)
        version, users = script(
            keys=[entries_key(self.slug), snapshot_key(self.slug)],
            args=[repr(now), op, member, repr(now + self.ttl), channel, SNAPSHOT_TTL,
                  "SPUBLISH" if is_cluster(client) else "PUBLISH"],
        )
        return Snapshot(int(version), json.loads(users))
