"""The hub on a Redis Cluster: sharded pub/sub, one connection per primary.

Publishers SPUBLISH (``history.publish_sharded``): a message goes to the shard that owns its
channel's slot and only that shard's subscribers get it. So a worker's hub holds one pub/sub
connection per primary that owns a slot of a channel its sockets need (never one per socket or
per channel), SSUBSCRIBEs each channel with its notice channel (same slot: ``wire``'s hash tag)
on that primary, and reads each connection in a greenlet of its own: a dead node stalls nothing
else. The fan-out, notices, receipts and the control channel are the single-server hub's.

It follows the cluster:

- **slot migration**: the old owner pushes ``sunsubscribe`` for each channel of a slot it gave
  away; an SSUBSCRIBE sent to a node that no longer owns the slot is answered ``MOVED``;
- **failover**: the dead primary's connection fails, and the slot map names its replica once the
  cluster has promoted it (retried with backoff until then);
- **a node added**, or a change no push told of: the slot map is read again every
  ``REFRESH`` seconds.

Each time, the slot map is read again (``CLUSTER SLOTS`` through the process's RedisCluster
client), the channels are moved to their owners, and the listeners of every channel that was
lost are told to ``resync()``: they catch up from the channel's history, as after an outage of a
single server.

Why not redis-py's ClusterPubSub (8.1): it reconnects a broken per-node connection from
whichever greenlet meets the error (the hub must own its connections, see ``hub._PubSub``); it
reconciles after a slot-map change on a thread of a ThreadPoolExecutor, telling nobody, so the
sockets could not catch up; ``get_sharded_message()`` without ``target_node`` polls the nodes in
turn (one dead node delays the others); and it SSUBSCRIBEs one channel per command. What is used
from redis-py: RedisCluster's slot map (``nodes_manager``), its commands, and plain per-node
PubSub connections.
"""
from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import gevent
import redis
from gevent.event import Event
from gevent.lock import Semaphore
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)

from . import wire
from .hub import BACKOFF_MAX, BACKOFF_MIN, Hub, _PubSub, confirm, read_replies
from .redis_client import get_redis, mode_kwargs, pubsub_kwargs

logger = logging.getLogger("ws4redis_server.hub")

REFRESH = 5.0  # seconds between readings of the slot map when nothing asked for one
_CLUSTER_ERRORS = (MovedError, AskError, ClusterDownError, TryAgainError)


class _Shard:
    """The hub's pub/sub connection to one primary, read in its own greenlet."""

    def __init__(self, hub: ShardedHub, name: str, host: str, port: int) -> None:
        self.hub = hub
        self.name, self.host, self.port = name, host, port
        self.channels: set[str] = set()  # the channels this primary owns that the hub wants
        self.sent: set[str] = set()  # SSUBSCRIBEd on the current connection
        self.inflight: dict[str, int] = {}
        self.pubsub: Any = None
        self.client: Any = None
        self.lock = Semaphore()
        self.down_since: float | None = None
        self.greenlet = gevent.spawn(self._run)

    def close(self) -> None:
        self.greenlet.kill(block=False)
        self._drop()

    def _drop(self) -> None:
        pubsub, self.pubsub, self.client = self.pubsub, None, None
        if pubsub is not None:
            try:
                pubsub.reset()
            except Exception:  # already broken
                pass

    def _run(self) -> None:
        backoff = BACKOFF_MIN
        while True:
            try:
                if self.pubsub is None:
                    self._connect()
                self._read()
            except _CLUSTER_ERRORS as exc:
                # An SSUBSCRIBE this node refused (MOVED: the slot map was stale). The connection
                # and its other channels are fine: the unconfirmed ones go to their owner.
                logger.info("Redis Cluster node %s: %s; reading the slot map again", self.name, exc)
                with self.lock:
                    refused = set(self.inflight)
                    self.sent -= refused
                    self.inflight = {}
                self.hub._lost(self, refused)
                continue
            except (redis.RedisError, OSError) as exc:
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    self.hub.stats["outages"] += 1
                    logger.error("Lost Redis Cluster node %s (%s); sockets stay open, moving its %d channels to "
                                 "their owner", self.name, exc, len(self.sent) or len(self.channels))
            except Exception:
                logger.exception("shard reader of %s failed; reconnecting", self.name)
            lost = self.sent
            with self.lock:
                self.sent, self.inflight = set(), {}
                self._drop()
            self.hub._lost(self, lost)
            gevent.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _connect(self) -> None:
        client = redis.Redis(host=self.host, port=self.port, **pubsub_kwargs(mode_kwargs(self.hub.settings)))
        client.auto_close_connection_pool = True
        pubsub = _PubSub(client.connection_pool, ignore_subscribe_messages=False)
        pubsub.connection = pubsub.connection_pool.get_connection()  # connects now: a dead node raises here
        with self.lock:
            # Keep the client: redis-py closes its pool, and this connection, when it is collected.
            self.client, self.pubsub, self.sent, self.inflight = client, pubsub, set(), {}
        if self.down_since is not None:
            logger.warning("Redis Cluster node %s is back after %.1fs", self.name, time.monotonic() - self.down_since)
            self.hub.stats["reconnects"] += 1
            self.down_since = None
        self.sync()

    def sync(self) -> None:
        """SSUBSCRIBEs the channels this shard should have and has not, SUNSUBSCRIBEs the others;
        one command per slot (Redis refuses channels of several slots in one)."""
        with self.lock:
            pubsub = self.pubsub
            if pubsub is None or pubsub.failed:
                return
            new = self.channels - self.sent
            gone = self.sent - self.channels
            self.sent -= gone
            for channel in gone:
                if channel not in self.hub._owner:  # not wanted anywhere any more
                    self.hub._confirmed.pop(channel, None)
            for channel in new:
                self.sent.add(channel)
                self.inflight[channel] = self.inflight.get(channel, 0) + 1
            prefix = self.hub.settings.prefix
            for names in _by_slot(prefix, gone):
                pubsub.sunsubscribe(*names)
            for names in _by_slot(prefix, new):
                pubsub.ssubscribe(*names)

    def _read(self) -> None:
        read_replies(self.pubsub, self.lock, self.hub._on_message, self._confirmed, self._unsubscribed)

    def _confirmed(self, channel: str) -> None:
        # Only the owner's confirmation counts: a late one from a node the channel has left
        # would let its sockets catch up before they are subscribed where it is published now.
        if self.hub._owner.get(channel) == self.name:
            confirm(self.inflight, self.sent, self.hub._confirmed, channel)

    def _unsubscribed(self, channel: str) -> None:
        if channel in self.sent:  # not asked for: the slot moved to another node
            self.sent.discard(channel)
            self.hub._lost(self, {channel})


def _by_slot(prefix: str, channels: Iterable[str]) -> list[list[str]]:
    """The channels with their notice channels, grouped by hash slot."""
    slots: dict[int, list[str]] = defaultdict(list)
    for channel in sorted(channels):
        slots[key_slot(channel.encode("utf-8"))] += [wire.notice_channel(prefix, channel), channel]
    return list(slots.values())


class ShardedHub(Hub):
    """The hub of a process on a Redis Cluster (same interface as :class:`~hub.Hub`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shards: dict[str, _Shard] = {}  # node name -> its connection
        self._owner: dict[str, str] = {}  # channel -> node name it is subscribed on
        self._refresh = False

    def start(self) -> ShardedHub:
        if not self._greenlets:
            self._greenlets = [gevent.spawn(self._manage_forever), gevent.spawn(self._count_forever)]
        return self

    def stop(self) -> None:
        gevent.killall(self._greenlets)
        self._greenlets = []
        for shard in self._shards.values():
            shard.close()
        self._shards.clear()

    @property
    def connected(self) -> bool:
        return bool(self._shards) and not self._down and all(
            shard.pubsub is not None for shard in self._shards.values())

    @property
    def connections(self) -> int:
        """Pub/sub connections open now (one per primary that owns a wanted channel)."""
        return sum(shard.pubsub is not None for shard in self._shards.values())

    def _ready(self, deadline: float) -> bool:
        return not self._down  # the channels' own confirmations say the rest

    # -- following the cluster ------------------------------------------------------------------

    def _lost(self, shard: _Shard, channels: set[str]) -> None:
        """``channels`` are no longer subscribed on ``shard`` (connection lost, slot moved):
        their listeners catch up once they are subscribed on their owner."""
        for channel in channels:
            if self._owner.get(channel) == shard.name:
                del self._owner[channel]
            shard.channels.discard(channel)
        self._refresh = True
        self._dirty.set()
        self._moved(channels)

    def _moved(self, channels: Iterable[str]) -> None:
        """The listeners of ``channels`` catch up, once the channels are confirmed on their new
        owner: until then a catch-up would miss what is published there before the SSUBSCRIBE."""
        for channel in channels:
            event = self._confirmed.get(channel)
            if event is not None and event.is_set():
                self._confirmed[channel] = Event()
        self._resync_listeners(channels)

    def _manage_forever(self) -> None:
        backoff = BACKOFF_MIN
        while True:
            if not self._dirty.wait(REFRESH):
                self._refresh = True
            self._dirty.clear()
            try:
                self._place()
                backoff = BACKOFF_MIN
                self._down = False
            except (redis.RedisError, RedisClusterException, OSError) as exc:
                if not self._down:
                    self.stats["outages"] += 1
                    logger.error("no node of the Redis Cluster at %s answers (%s); sockets stay open, retrying",
                                 self.settings.redis_url, exc)
                self._down = True
                self._refresh = True
                gevent.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, BACKOFF_MAX)
                self._dirty.set()
            except Exception:
                logger.exception("placing channels on the Redis Cluster's nodes failed; retrying")
                gevent.sleep(BACKOFF_MAX)
                self._dirty.set()

    def _place(self) -> None:
        """Subscribes every wanted channel on the primary that owns its slot, and nothing else."""
        nodes = get_redis().nodes_manager  # type: ignore[attr-defined]
        if self._refresh:
            self._refresh = False
            nodes.initialize()
        wanted = set(self._listeners)
        wanted.add(self.control_channel)
        for channel in list(self._owner):
            if channel not in wanted:
                shard = self._shards.get(self._owner.pop(channel))
                if shard is not None:
                    shard.channels.discard(channel)
        for channel in wanted:
            try:
                node = nodes.get_node_from_slot(key_slot(channel.encode("utf-8")))
            except SlotNotCoveredError:
                self._refresh = True  # a failover under way: try again shortly
                continue
            current = self._owner.get(channel)
            if current == node.name:
                continue
            if current is not None and current in self._shards:
                self._shards[current].channels.discard(channel)
            shard = self._shards.get(node.name)
            if shard is None:
                shard = self._shards[node.name] = _Shard(self, node.name, node.host, node.port)
            shard.channels.add(channel)
            self._owner[channel] = node.name
            if current is not None:  # moved without a push (a failover): catch up as after one
                self._moved([channel])
        for name, shard in list(self._shards.items()):
            if not shard.channels and not shard.sent:
                shard.close()
                del self._shards[name]
            else:
                try:
                    shard.sync()
                except (redis.RedisError, OSError) as exc:  # its reader notices and reconnects
                    logger.debug("SSUBSCRIBE on %s failed: %s", name, exc)
        if self._refresh:
            gevent.sleep(BACKOFF_MIN)
            self._dirty.set()
