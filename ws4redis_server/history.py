"""Message ids and each channel's recent history, so a socket can catch up on what it missed.

Every message published through :class:`~ws4redis_server.publisher.RedisPublisher` (or by a
socket with ``publish-*`` flags) gets an id from one Lua script that, atomically: makes the id,
appends the message and its opcode to the channel's capped Redis Stream
(``WS4REDIS_HISTORY_LENGTH`` entries, ``WS4REDIS_HISTORY_SECONDS`` seconds) and PUBLISHes the
plain message right after its notice (the id, text or binary, a receipt: see ``wire``). Ids are
Redis Stream ids (``<milliseconds>-<sequence>``) drawn from one counter for all channels, so they
are ordered across channels and keep increasing across a Redis restart (they follow the clock).

Because the id and the PUBLISH happen in one script, a socket that has seen id X has seen every
message of its channels up to X that pub/sub delivered; what it missed after X is in the streams.
:func:`replay` reads it back, tells the current position, and says when the retention window has
lost some of it (a gap).
"""
from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from redis.cluster import RedisCluster

from . import wire
from .wire import parse_id

# KEYS: the id sequence, then per channel: the channel (its persisted message), its stream, its
# notice channel, its binary marker. ARGV: length, window (ms), expire (s), message, opcode,
# notice before and after the id, binary marker ('' for none).
_PUBLISH = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local seq = 0
local last = redis.call('GET', KEYS[1])
if last then
  local lms, lseq = string.match(last, '^(%d+)-(%d+)$')
  if lms and tonumber(lms) >= ms then
    ms = tonumber(lms)
    seq = tonumber(lseq) + 1
  end
end
local id = string.format('%.0f-%.0f', ms, seq)
redis.call('SET', KEYS[1], id)
local maxlen, age, expire = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local minid = string.format('%.0f', ms - age)
local notice = ARGV[6] .. id .. ARGV[7]
local receivers = 0
for i = 2, #KEYS, 4 do
  redis.call('XADD', KEYS[i + 1], 'MAXLEN', '~', maxlen, id, 'm', ARGV[4], 'o', ARGV[5])
  redis.call('XTRIM', KEYS[i + 1], 'MINID', '~', minid)
  redis.call('PEXPIRE', KEYS[i + 1], age)
  -- Adjacent, and nothing else runs in between: each hub attaches the notice to the message.
  redis.call('PUBLISH', KEYS[i + 2], notice)
  receivers = receivers + redis.call('PUBLISH', KEYS[i], ARGV[4])
  if expire > 0 then
    redis.call('SET', KEYS[i], ARGV[4], 'EX', expire)
    if ARGV[8] ~= '' then redis.call('SET', KEYS[i + 3], ARGV[8], 'EX', expire)
    else redis.call('DEL', KEYS[i + 3]) end
  end
end
return {id, receivers}
"""

# Lua: ids as (ms, seq) and their order.
_ID_FUNCTIONS = """
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function older(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
"""

_REPLAY = _ID_FUNCTIONS + """
local start = ARGV[1]
local pos = redis.call('GET', KEYS[1])
if not pos then
  -- Nothing was ever published, or Redis lost its data: nothing to replay.
  if start ~= '' and start ~= '0-0' then return {'0-0', 1} end
  return {'0-0', 0}
end
if start == '' then return {pos, 0} end
if older(pos, start) then return {pos, 1} end
local age = tonumber(ARGV[2])
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local start_ms = parse(start)
local out = {pos, 0}
for i = 2, #KEYS do
  local info = redis.pcall('XINFO', 'STREAM', KEYS[i])
  if info.err then
    -- No stream: nothing was published there within the window, or its entries expired.
    if start_ms < now_ms - age then out[2] = 1 end
  else
    -- Entries older than the first one were trimmed (by length or age): if the first is newer
    -- than start, some of those may have come after start.
    local fields = {}
    for j = 1, #info, 2 do fields[info[j]] = info[j + 1] end
    local added = tonumber(fields['entries-added'] or -1)
    local first = fields['first-entry']
    if first and older(start, first[1]) and (added < 0 or added > tonumber(fields['length'])) then
      out[2] = 1
    end
    for _, entry in ipairs(redis.call('XRANGE', KEYS[i], '(' .. start, pos)) do
      out[#out + 1] = i - 1
      out[#out + 1] = entry[1]
      out[#out + 1] = entry[2][2]
      out[#out + 1] = entry[2][4] or ''
    end
  end
end
return out
"""


# Redis Cluster: one script per channel, every key in the channel's slot (``wire``'s hash tags),
# SPUBLISH so that the message goes to the channel's shard only. The id is the channel's own:
# XADD ``*`` on its stream (the shard's clock in milliseconds, a sequence within one). KEYS: the
# channel, its stream, its notice channel, its binary marker. ARGV as _PUBLISH, then '1' to keep
# it in the history (with an id) and '1' to send the notice.
_PUBLISH_SHARDED = """
local id = ''
local maxlen, age, expire = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[9] ~= '' then
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'm', ARGV[4], 'o', ARGV[5])
  local ms = tonumber(string.match(id, '^(%d+)-'))
  redis.call('XTRIM', KEYS[2], 'MINID', '~', string.format('%.0f', ms - age))
  redis.call('PEXPIRE', KEYS[2], age)
end
if ARGV[10] ~= '' then redis.call('SPUBLISH', KEYS[3], ARGV[6] .. id .. ARGV[7]) end
local receivers = redis.call('SPUBLISH', KEYS[1], ARGV[4])
if expire > 0 then
  redis.call('SET', KEYS[1], ARGV[4], 'EX', expire)
  if ARGV[8] ~= '' then redis.call('SET', KEYS[4], ARGV[8], 'EX', expire)
  else redis.call('DEL', KEYS[4]) end
end
return {id, receivers}
"""

# One channel's stream on its shard: the entries after ARGV[1] (XRANGE from ARGV[5]) up to the
# cut ARGV[3], and whether some may be lost (trimmed; the window passed; or, with ARGV[4], a newer
# id than the stream's newest: a failover lost the tail). Returns {gap, the stream's newest id
# ('' without a stream), id, message, opcode, ...}.
_REPLAY_SHARDED = _ID_FUNCTIONS + """
local start, age, cut = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local info = redis.pcall('XINFO', 'STREAM', KEYS[1])
local out = {0, ''}
if info.err then
  local now = redis.call('TIME')
  if parse(start) < tonumber(now[1]) * 1000 - age then out[1] = 1 end
  return out
end
local fields = {}
for j = 1, #info, 2 do fields[info[j]] = info[j + 1] end
local added = tonumber(fields['entries-added'] or -1)
local first = fields['first-entry']
if first and older(start, first[1]) and (added < 0 or added > tonumber(fields['length'])) then out[1] = 1 end
if ARGV[4] ~= '' and older(fields['last-generated-id'], start) then out[1] = 1 end
out[2] = fields['last-generated-id']
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], ARGV[5], cut)) do
  out[#out + 1] = entry[1]
  out[#out + 1] = entry[2][2]
  out[#out + 1] = entry[2][4] or ''
end
return out
"""
# The sequence of a cut position (below): no message id has it.
CUT_SEQUENCE = 2 ** 64 - 1


def is_cluster(client: Any) -> bool:
    """True if ``client`` talks to a Redis Cluster (ids and histories per channel, sharded pub/sub)."""
    return isinstance(client, RedisCluster)


def stream_key_tagged(prefix: str, channel: str) -> str:
    """``channel``'s stream on a Redis Cluster, in the channel's slot (``[prefix:]ws4redis:history:{<channel>}``)."""
    return wire.tagged(f"{prefix}ws4redis:history:", channel)


def sequence_key(prefix: str) -> str:
    """The key holding the last id given out."""
    return f"{prefix}ws4redis:last-id"


def stream_key(prefix: str, channel: str) -> str:
    """The Redis Stream holding ``channel``'s recent messages (never a channel name itself)."""
    return f"{prefix}ws4redis:history:{channel}"


@functools.lru_cache(maxsize=8)
def _scripts(client: redis.Redis) -> tuple[Any, Any]:
    """The publish and replay scripts, registered on ``client`` (one per process, as a rule)."""
    if is_cluster(client):
        return client.register_script(_PUBLISH_SHARDED), client.register_script(_REPLAY_SHARDED)
    return client.register_script(_PUBLISH), client.register_script(_REPLAY)


def publish_sharded(client: redis.Redis, prefix: str, channels: Iterable[str], message: bytes, *, length: int,
                    seconds: int, expire: int = 0, text: bool, receipt: str | None = None,
                    history: bool = True) -> tuple[str, int]:
    """:func:`publish` on a Redis Cluster: one script per channel on the channel's shard (SPUBLISH),
    each with the channel's own id; without ``history`` no id, and a notice only when a receipt or
    the opcode needs one. Returns (the last channel's id, sum of SPUBLISH replies)."""
    before, after = wire.notice_parts(text, receipt)
    marker = wire.binary_marker(message, text)
    notice = history or receipt is not None or marker is not None
    stored_marker = (marker or b"") if expire > 0 else b""
    script = _scripts(client)[0]
    message_id, receivers = "", 0
    for channel in channels:
        reply = script(keys=[channel, stream_key_tagged(prefix, channel), wire.notice_channel(prefix, channel),
                             wire.binary_marker_key(prefix, channel)],
                       args=[length, seconds * 1000, expire, message, wire.TEXT if text else wire.BINARY,
                             before, after, stored_marker, "1" if history else "", "1" if notice else ""])
        message_id, receivers = reply[0].decode("ascii"), receivers + int(reply[1])
    return message_id, receivers


def publish(client: redis.Redis, prefix: str, channels: Iterable[str], message: bytes, *, length: int,
            seconds: int, expire: int = 0, text: bool | None = None,
            receipt: str | None = None) -> tuple[str, int]:
    """Publishes ``message`` on ``channels`` with a new id and keeps it in their histories (and,
    when ``expire`` > 0, as their ws4redis persisted message). ``text``: whether sockets get it
    as a text frame (None: if it is UTF-8). ``receipt`` asks the hubs to count its deliveries.
    Returns (id, sum of PUBLISH replies on ``channels``); raises redis.RedisError."""
    if text is None:
        text = wire.is_text(message)
    if is_cluster(client):
        return publish_sharded(client, prefix, channels, message, length=length, seconds=seconds, expire=expire,
                               text=text, receipt=receipt)
    keys = [sequence_key(prefix)]
    for channel in channels:
        keys += [channel, stream_key(prefix, channel), wire.notice_channel(prefix, channel),
                 wire.binary_marker_key(prefix, channel)]
    before, after = wire.notice_parts(text, receipt)
    marker = (wire.binary_marker(message, text) or b"") if expire > 0 else b""
    reply = _scripts(client)[0](
        keys=keys, args=[length, seconds * 1000, expire, message, wire.TEXT if text else wire.BINARY,
                         before, after, marker])
    return reply[0].decode("ascii"), int(reply[1])


def position(client: redis.Redis, prefix: str) -> str:
    """Returns the last id given out ("0-0" if none); on a Redis Cluster, where ids are per
    channel, a cut position: every id of every channel given out before now is below it (see
    :func:`cut`). Raises redis.RedisError."""
    if is_cluster(client):
        return cut(client)
    value = cast("bytes | None", client.get(sequence_key(prefix)))
    return value.decode("ascii") if value else "0-0"


def cut(client: redis.Redis) -> str:
    """A position between ids on a Redis Cluster: ``<ms>-<2**64-1>`` for the millisecond before
    the cluster's clock now (TIME), above every id given out until now and below every later one.
    It assumes the nodes' clocks agree (NTP: within a few milliseconds)."""
    seconds, microseconds = cast("tuple[int, int]", client.time())
    return f"{seconds * 1000 + microseconds // 1000 - 1}-{CUT_SEQUENCE}"


@dataclass
class Replay:
    """What :func:`replay` found: ``position`` (ids up to it are covered), ``gap`` (some messages
    after ``start`` may be lost: retention window passed, or Redis lost its data) and the
    ``entries`` ``(id, channel, message, text)`` after ``start``, oldest first (``text``: it goes
    out as a text frame). On a Redis Cluster, ``floors``: per channel, the id up to which its
    live messages were replayed (its stream's newest when read, at most the position): a message
    the clock put below the position but its shard added after the read comes live."""

    position: str
    gap: bool
    entries: list[tuple[str, str, bytes, bool]] = field(default_factory=list)
    floors: dict[str, str] = field(default_factory=dict)


def replay(client: redis.Redis, prefix: str, channels: list[str], start: str, seconds: int,
           inclusive: Iterable[str] = ()) -> Replay:
    """Returns the messages of ``channels`` after id ``start`` up to the current position, in
    id order, in one round trip; raises redis.RedisError. On a Redis Cluster, the channels of
    ``inclusive`` replay from ``start`` itself (ids are per channel there: another channel's
    message may have the id the socket has)."""
    if is_cluster(client):
        return _replay_sharded(client, prefix, channels, start, seconds, set(inclusive))
    keys = [sequence_key(prefix)] + [stream_key(prefix, channel) for channel in channels]
    reply = _scripts(client)[1](keys=keys, args=[start, seconds * 1000])
    entries = []
    for i in range(2, len(reply), 4):
        data = reply[i + 2]
        entries.append((reply[i + 1].decode("ascii"), channels[int(reply[i]) - 1], data,
                        wire.entry_is_text(reply[i + 3], data)))
    entries.sort(key=lambda entry: parse_id(entry[0]))
    return Replay(reply[0].decode("ascii"), bool(reply[1]), entries)


def _replay_sharded(client: redis.Redis, prefix: str, channels: list[str], start: str, seconds: int,
                    inclusive: set[str]) -> Replay:
    """:func:`replay` on a Redis Cluster: one script per channel, on its shard, up to a cut taken
    first (:func:`cut`), which is the position returned: a message of any channel with an id up
    to it was published before the cut, so its stream had it when read; a later one is not
    replayed and comes live. A socket on one channel that resumes from a message id newer than
    the channel's newest (a failover lost the tail) gets a gap."""
    position = cut(client)
    if not start:
        return Replay(position, False)
    milliseconds, sequence = parse_id(start)
    exact = len(channels) == 1 and sequence != CUT_SEQUENCE
    # XRANGE's exclusive "(<id>" cannot follow the last sequence of a millisecond.
    after = f"{milliseconds + 1}-0" if sequence == CUT_SEQUENCE else f"({start}"
    script = _scripts(client)[1]
    gap = False
    entries = []
    floors = {}
    for channel in channels:
        reply = script(keys=[stream_key_tagged(prefix, channel)],
                       args=[start, seconds * 1000, position, "1" if exact else "",
                             start if channel in inclusive and sequence != CUT_SEQUENCE else after])
        gap = gap or bool(reply[0])
        newest = reply[1].decode("ascii") if reply[1] else "0-0"
        floors[channel] = min(newest, position, key=parse_id)
        for i in range(2, len(reply), 3):
            data = reply[i + 1]
            entries.append((reply[i].decode("ascii"), channel, data, wire.entry_is_text(reply[i + 2], data)))
    entries.sort(key=lambda entry: (parse_id(entry[0]), entry[1]))  # equal ids: by channel (see delivery)
    return Replay(position, gap, entries, floors)
