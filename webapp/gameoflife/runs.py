"""Runs of the Game of Life in Redis: which run is current, its size, and the cells' counters.

A run's cells are spread over several WebSocket worker processes, so everything they must agree
on lives in Redis: the current run (a hash), the cells connected and subscribed (sets, so a cell
counts once), and the run's channel, on which Django publishes the run's events.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from ws4redis_server import get_redis, get_settings, publish

from . import protocol

logger = logging.getLogger("webapp.gameoflife")

KEEP = 24 * 3600  # seconds the counters of a run outlive their last update

# Adds a cell to a counter set of the current run; returns {added (0/1), cells in the set}, or
# {-1, current run id} when the run is no longer the current one. Atomic, so exactly one cell
# sees the set become full.
_COUNT = """
local current = redis.call('HGET', KEYS[1], 'id')
if current ~= ARGV[1] then return {-1, tonumber(current) or 0} end
local added = redis.call('SADD', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return {added, redis.call('SCARD', KEYS[2])}
"""


# Counts a cell that leaves the current run; once every cell that connected has left, marks the
# run ended and returns 1 (once), else 0; -1 when the run is no longer the current one.
_LEAVE = """
local current = redis.call('HGET', KEYS[1], 'id')
if current ~= ARGV[1] then return -1 end
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[3])
if redis.call('SCARD', KEYS[3]) >= redis.call('SCARD', KEYS[2]) then
  return redis.call('HSETNX', KEYS[1], 'ended', 1)
end
return 0
"""


class StaleRun(Exception):
    """The run is not the current one any more (a newer run was started)."""


@dataclass(frozen=True)
class Run:
    id: int
    size: int

    @property
    def cells(self) -> int:
        return self.size * self.size


def _key(*parts: object) -> str:
    # One hash tag for every key of the runs: on a Redis Cluster they share a slot, so that each
    # script and transaction below touches one node.
    return get_settings().prefix + ":".join(("{gameoflife}", *map(str, parts)))


def channel() -> str:
    """Returns the Redis channel of the runs' events, shared by every process and watcher."""
    return get_settings().prefix + "gameoflife:events"


def current_run() -> Run | None:
    """Returns the current run, or None if no run was ever started. Raises redis.RedisError."""
    fields = get_redis().hgetall(_key("run"))
    if b"id" not in fields:
        return None
    return Run(int(fields[b"id"]), int(fields[b"size"]))


def new_run(size: int) -> Run:
    """Makes a new run of a size × size grid the current one and announces it on the channel.
    Raises redis.RedisError."""
    client = get_redis()
    run = Run(int(client.incr(_key("runs"))), size)
    previous = current_run()
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(_key("run"))
        pipe.hset(_key("run"), mapping={"id": run.id, "size": size})
        if previous is not None:
            pipe.delete(*(_key(previous.id, counter) for counter in (protocol.CONNECTED, protocol.SUBSCRIBED,
                                                                       protocol.LEFT)))
        pipe.execute()
    publish(channel(), protocol.event(protocol.NEW_RUN, run.id, size))
    logger.info("Game of Life run %d: %d×%d grid, waiting for %d cells", run.id, size, size, run.cells)
    return run


def count(run: Run, counter: str, index: int) -> tuple[bool, int]:
    """Counts cell ``index`` in ``counter`` (CONNECTED or SUBSCRIBED) of ``run``. Returns (whether
    it was new, the cells counted so far); announces the progress and, once every cell is
    counted, the next phase. Raises StaleRun if ``run`` is no longer current, redis.RedisError."""
    added, total = get_redis().eval(_COUNT, 2, _key("run"), _key(run.id, counter), run.id, index, KEEP)
    if added < 0:
        raise StaleRun(f"run {run.id} is over: run {total} is the current one")
    if added:
        _announce(run, counter, total)
    return bool(added), total


def leave(run: Run, index: int) -> None:
    """Counts cell ``index`` (one that was counted CONNECTED) as gone from ``run``; announces the
    end of the run once every connected cell has gone. Never raises: a cell is leaving."""
    try:
        ended = get_redis().eval(_LEAVE, 3, _key("run"), _key(run.id, protocol.CONNECTED),
                                 _key(run.id, protocol.LEFT), run.id, index, KEEP)
        if ended == 1:
            logger.info("Game of Life run %d: every cell has left; the run is over", run.id)
            publish(channel(), protocol.event(protocol.ENDED, run.id))
    except Exception as exc:  # Redis down: pages show the run as going on until the next one
        logger.warning("Game of Life run %d: cell %d left uncounted: %s", run.id, index, exc)


def _announce(run: Run, counter: str, total: int) -> None:
    # About a hundred updates per phase for the pages, ten lines in the log.
    if total == run.cells or total % max(1, run.cells // 100) == 0:
        publish(channel(), protocol.event(counter, run.id, total))
    if total == run.cells or total % max(1, run.cells // 10) == 0:
        logger.info("Game of Life run %d: %5d cells %s", run.id, total, counter)
    if total != run.cells:
        return
    if counter == protocol.CONNECTED:
        logger.info("Game of Life run %d: telling the cells to subscribe", run.id)
        publish(channel(), protocol.event(protocol.SUBSCRIBE_ALL, run.id))
    else:
        get_redis().hset(_key("run"), "started", 1)
        logger.info("Game of Life run %d: telling the cells to run", run.id)
        publish(channel(), protocol.event(protocol.START, run.id))


def snapshot() -> list[str]:
    """Returns the events that bring a new watcher up to date with the current run (none if no
    run was started). Raises redis.RedisError."""
    client = get_redis()
    fields = client.hgetall(_key("run"))
    if b"id" not in fields:
        return []
    run = int(fields[b"id"])
    events = [protocol.event(protocol.NEW_RUN, run, int(fields[b"size"]))]
    for counter in (protocol.CONNECTED, protocol.SUBSCRIBED):
        total = client.scard(_key(run, counter))
        if total:
            events.append(protocol.event(counter, run, total))
    if fields.get(b"started"):
        events.append(protocol.event(protocol.START, run))
    if fields.get(b"ended"):
        events.append(protocol.event(protocol.ENDED, run))
    return events
