"""In-process transport with NATS subject and queue-group semantics.

The embedded default and the engine for large simulations: no broker, just asyncio, built
so that a million subscribers cost memory, not tasks. Subscriptions with a plain subject
sit in a dictionary keyed by subject, so publishing costs one lookup plus one append per
receiver; only wildcard patterns are matched one by one. Deliveries go through a fixed
number of shards, each a FIFO drained by one task: a subscription is pinned to one shard,
so every subscriber sees messages in publish order, and fanning a message out to a
million subscribers creates no task at all. A handler that awaits something slow delays
the other subscriptions of its shard, as a slow NATS callback delays its connection.
Within a queue group each message goes to one member, chosen round-robin.

Fault injection, off by default, exists on purpose so that agents' resync can be tested:
``drop_rate`` is the probability that one delivery (one message to one subscriber) is
lost, and ``reorder=True`` shuffles whatever is waiting in a shard before it is
delivered. ``seed`` makes both reproducible.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from itertools import count

from cascade.errors import Unavailable
from cascade.fabric.transports.base import (
    Handler,
    Message,
    ReconnectHandler,
    Subscription,
    Transport,
    subject_matches,
    validate_subject,
)

log = logging.getLogger(__name__)

SHARDS = 8
FAIR_TURN = 256  # deliveries a shard makes before yielding to the others


class MemorySubscription(Subscription):
    __slots__ = ("_active", "_transport", "handler", "queue", "shard", "subject")

    def __init__(
        self,
        transport: MemoryTransport,
        subject: str,
        handler: Handler,
        queue: str | None,
        shard: _Shard,
    ) -> None:
        self.subject = subject
        self.queue = queue
        self.handler = handler
        self.shard = shard
        self._transport = transport
        self._active = True

    @property
    def active(self) -> bool:
        return self._active

    async def unsubscribe(self) -> None:
        if self._active:
            self._active = False
            self._transport._remove(self)


class _Shard:
    """One FIFO of (subscription, message) deliveries and the task that drains it."""

    def __init__(self, transport: MemoryTransport) -> None:
        self._transport = transport
        self._pending: deque[tuple[MemorySubscription, Message]] = deque()
        self._wakeup = asyncio.Event()
        self.busy = False
        self.task = asyncio.get_running_loop().create_task(self._drain())

    def put(self, sub: MemorySubscription, message: Message) -> None:
        if not self._pending:
            self._wakeup.set()
        self._pending.append((sub, message))

    @property
    def idle(self) -> bool:
        return not self.busy and not self._pending

    async def _drain(self) -> None:
        while True:
            self.busy = False
            await self._wakeup.wait()
            self._wakeup.clear()
            self.busy = True
            batch, self._pending = self._pending, deque()
            if self._transport.reorder:
                shuffled = list(batch)
                self._transport.rng.shuffle(shuffled)
                batch = deque(shuffled)
            for done, (sub, message) in enumerate(batch, 1):
                if sub._active:
                    try:
                        await sub.handler(message)
                    except Exception:
                        log.exception("fabric handler failed on %s", message.subject)
                if done % FAIR_TURN == 0:
                    await asyncio.sleep(0)  # let the other shards have a turn


class MemoryTransport(Transport):
    def __init__(
        self, drop_rate: float = 0.0, reorder: bool = False, seed: int | None = None
    ) -> None:
        if not 0.0 <= drop_rate <= 1.0:
            raise ValueError(f"drop_rate must be within [0, 1], got {drop_rate}")
        self.drop_rate = drop_rate
        self.reorder = reorder
        self.rng = random.Random(seed)
        self.published = 0  # publish calls and their bytes, for benchmarks
        self.published_bytes = 0
        self.deliveries = 0  # messages handed to subscribers
        self._exact: dict[str, list[MemorySubscription]] = {}
        self._patterns: list[MemorySubscription] = []
        self._turns: dict[str, int] = {}
        self._shards: tuple[list[_Shard], list[_Shard]] = ([], [])  # plain, queue groups
        self._next_shard = count()
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("fabric transport is closed")

    def _shard(self, queue: str | None) -> _Shard:
        """Queue-group members (shared consumers such as controllers) get shards of their
        own, so what they consume is not queued behind a large fan-out to plain ones."""
        pool = self._shards[bool(queue)]
        if len(pool) < SHARDS:
            pool.append(_Shard(self))
            return pool[-1]
        return pool[next(self._next_shard) % SHARDS]

    def _remove(self, sub: MemorySubscription) -> None:
        if "*" in sub.subject or ">" in sub.subject:
            with contextlib.suppress(ValueError):
                self._patterns.remove(sub)
            return
        subs = self._exact.get(sub.subject, [])
        with contextlib.suppress(ValueError):
            subs.remove(sub)
        if not subs:
            self._exact.pop(sub.subject, None)

    def _offer(self, sub: MemorySubscription, message: Message) -> None:
        if self.drop_rate and self.rng.random() < self.drop_rate:
            return
        self.deliveries += 1
        sub.shard.put(sub, message)

    def _receivers(self, subject: str) -> list[MemorySubscription]:
        exact = self._exact.get(subject, [])
        if not self._patterns:
            return exact
        return exact + [s for s in self._patterns if subject_matches(s.subject, subject)]

    async def publish(self, subject: str, data: bytes) -> None:
        self._check_open()
        validate_subject(subject, wildcards=False)
        message = Message(subject, bytes(data))
        self.published += 1
        self.published_bytes += len(data)
        groups: dict[str, list[MemorySubscription]] = {}
        for sub in self._receivers(subject):
            if sub.queue is None:
                self._offer(sub, message)
            else:
                groups.setdefault(sub.queue, []).append(sub)
        for queue, members in groups.items():
            turn = self._turns.get(queue, 0)
            self._turns[queue] = turn + 1
            self._offer(members[turn % len(members)], message)

    async def subscribe(
        self, subject: str, handler: Handler, queue: str | None = None
    ) -> MemorySubscription:
        self._check_open()
        validate_subject(subject, wildcards=True)
        if queue is not None:
            validate_subject(queue, wildcards=False)
        sub = MemorySubscription(self, subject, handler, queue, self._shard(queue))
        if "*" in subject or ">" in subject:
            self._patterns.append(sub)
        else:
            self._exact.setdefault(subject, []).append(sub)
        return sub

    def on_reconnect(self, handler: ReconnectHandler) -> None:
        """Never called: an in-process bus has no connection to lose."""
        del handler

    async def drained(self) -> None:
        """Return once every delivery made so far has been handled (and any it caused)."""
        while not all(shard.idle for pool in self._shards for shard in pool):
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        self._closed = True
        self._exact.clear()
        self._patterns.clear()
        shards = [shard for pool in self._shards for shard in pool]
        for shard in shards:
            shard.task.cancel()
        for shard in shards:
            with contextlib.suppress(asyncio.CancelledError):
                await shard.task
