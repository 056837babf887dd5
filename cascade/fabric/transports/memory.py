"""In-process transport with NATS subject and queue-group semantics.

The embedded default and the engine for large simulations: no broker, just asyncio. Each
subscription owns an unbounded ``asyncio.Queue`` and one delivery task, so handlers run
one message at a time and every subscriber sees messages in publish order. Within a queue
group each message goes to one member, chosen round-robin.

Fault injection, off by default, exists on purpose so that agents' resync can be tested:
``drop_rate`` is the probability that one delivery (one message to one subscriber) is
lost, and ``reorder=True`` shuffles whatever is waiting in a subscriber's queue before it
is delivered. ``seed`` makes both reproducible.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from cascade.errors import Unavailable
from cascade.fabric.transports.base import (
    Handler,
    Message,
    Subscription,
    Transport,
    subject_matches,
    validate_subject,
)

log = logging.getLogger(__name__)


class MemorySubscription(Subscription):
    def __init__(
        self, transport: MemoryTransport, subject: str, handler: Handler, queue: str | None
    ) -> None:
        self.subject = subject
        self.queue = queue
        self._transport = transport
        self._handler = handler
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._active = True
        self._task = asyncio.get_running_loop().create_task(self._deliver())

    @property
    def active(self) -> bool:
        return self._active

    def _put(self, message: Message) -> None:
        if self._active:
            self._inbox.put_nowait(message)

    async def _deliver(self) -> None:
        while self._active:
            batch = [await self._inbox.get()]
            if self._transport.reorder:
                while not self._inbox.empty():
                    batch.append(self._inbox.get_nowait())
                self._transport.rng.shuffle(batch)
            for message in batch:
                if not self._active:
                    return
                try:
                    await self._handler(message)
                except Exception:
                    log.exception("fabric handler failed on %s", message.subject)

    async def unsubscribe(self) -> None:
        if not self._active:
            return
        self._active = False
        self._transport._remove(self)
        if asyncio.current_task() is self._task:
            return  # called from our own handler: the loop exits once it returns
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class MemoryTransport(Transport):
    def __init__(
        self, drop_rate: float = 0.0, reorder: bool = False, seed: int | None = None
    ) -> None:
        if not 0.0 <= drop_rate <= 1.0:
            raise ValueError(f"drop_rate must be within [0, 1], got {drop_rate}")
        self.drop_rate = drop_rate
        self.reorder = reorder
        self.rng = random.Random(seed)
        self._subs: list[MemorySubscription] = []
        self._next: dict[str, int] = {}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("fabric transport is closed")

    def _remove(self, sub: MemorySubscription) -> None:
        with contextlib.suppress(ValueError):
            self._subs.remove(sub)

    def _offer(self, sub: MemorySubscription, message: Message) -> None:
        if self.drop_rate and self.rng.random() < self.drop_rate:
            return
        sub._put(message)

    async def publish(self, subject: str, data: bytes) -> None:
        self._check_open()
        validate_subject(subject, wildcards=False)
        message = Message(subject, bytes(data))
        groups: dict[str, list[MemorySubscription]] = {}
        for sub in self._subs:
            if not subject_matches(sub.subject, subject):
                continue
            if sub.queue is None:
                self._offer(sub, message)
            else:
                groups.setdefault(sub.queue, []).append(sub)
        for queue, members in groups.items():
            turn = self._next.get(queue, 0)
            self._next[queue] = turn + 1
            self._offer(members[turn % len(members)], message)

    async def subscribe(
        self, subject: str, handler: Handler, queue: str | None = None
    ) -> MemorySubscription:
        self._check_open()
        validate_subject(subject, wildcards=True)
        if queue is not None:
            validate_subject(queue, wildcards=False)
        sub = MemorySubscription(self, subject, handler, queue)
        self._subs.append(sub)
        return sub

    async def close(self) -> None:
        self._closed = True
        for sub in list(self._subs):
            await sub.unsubscribe()
