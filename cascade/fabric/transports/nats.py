"""The production transport: core NATS through nats-py.

Core NATS delivers at most once: a message published while an agent is away or
reconnecting is simply lost. That is enough here because every fabric message carries a
revision and an agent that notices a gap resyncs from a snapshot, so durable delivery
would buy nothing for the bulk of the traffic. JetStream is reserved for messages that must
survive an agent's absence; which ones is decided in the issue's later piece, not here.
"""

from __future__ import annotations

import logging

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSub
from nats.errors import Error as NatsError

from cascade.errors import Unavailable
from cascade.fabric.transports.base import (
    Handler,
    Message,
    Subscription,
    Transport,
    validate_subject,
)

log = logging.getLogger(__name__)


class NatsSubscription(Subscription):
    def __init__(self, sub: NatsSub, subject: str, queue: str | None) -> None:
        self.subject = subject
        self.queue = queue
        self._sub = sub
        self._active = True

    @property
    def active(self) -> bool:
        return self._active

    async def unsubscribe(self) -> None:
        if not self._active:
            return
        self._active = False
        try:
            await self._sub.unsubscribe()
        except NatsError as error:  # connection closed or draining: interest is gone anyway
            log.debug("nats unsubscribe from %s: %s", self.subject, error)


class NatsTransport(Transport):
    def __init__(self, nc: Client) -> None:
        self._nc = nc

    @classmethod
    async def connect(
        cls, servers: str = "nats://127.0.0.1:4222", name: str | None = None
    ) -> NatsTransport:
        """Connect, failing fast with ``Unavailable``; once connected, reconnect forever.

        nats-py 2.x treats ``max_reconnect_attempts=0`` as "no limit" while connecting, so
        the first connect allows one quick retry and no back-off instead.
        """
        connected = False

        async def log_error(error: Exception) -> None:
            # Quiet while the first connection is tried: its failure becomes one
            # Unavailable; once connected, each error is a warning.
            (log.warning if connected else log.debug)("nats: %s", error)

        try:
            nc = await nats.connect(
                servers,
                name=name,
                connect_timeout=2,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0,
                error_cb=log_error,
            )
        except (OSError, TimeoutError, NatsError) as error:
            reason = str(error) or type(error).__name__
            raise Unavailable(f"cannot connect to NATS at {servers}: {reason}") from None
        connected = True
        nc.options.update(allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=2)
        return cls(nc)

    def _check_open(self) -> None:
        if self._nc.is_closed or self._nc.is_draining:
            raise Unavailable("fabric transport is closed")

    async def publish(self, subject: str, data: bytes) -> None:
        self._check_open()
        validate_subject(subject, wildcards=False)
        try:
            await self._nc.publish(subject, bytes(data))
        except NatsError as error:
            raise Unavailable(f"cannot publish to {subject}: {error}") from None

    async def subscribe(
        self, subject: str, handler: Handler, queue: str | None = None
    ) -> NatsSubscription:
        self._check_open()
        validate_subject(subject, wildcards=True)
        if queue is not None:
            validate_subject(queue, wildcards=False)

        async def deliver(msg: Msg) -> None:
            try:
                await handler(Message(msg.subject, msg.data))
            except Exception:
                log.exception("fabric handler failed on %s", msg.subject)

        sub = await self._nc.subscribe(subject, queue=queue or "", cb=deliver)
        return NatsSubscription(sub, subject, queue)

    async def flush(self, timeout: int = 2) -> None:
        """Round-trip to the server: everything published so far has reached it."""
        self._check_open()
        await self._nc.flush(timeout=timeout)

    async def close(self) -> None:
        if self._nc.is_closed:
            return
        try:
            await self._nc.drain()
        finally:
            await self._nc.close()
