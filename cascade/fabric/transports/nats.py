"""The production transport: core NATS through nats-py, on one server or a cluster.

Core NATS delivers at most once: a message published while an agent is away or
reconnecting is simply lost. That is enough here because every fabric message carries a
revision and an agent that notices a gap resyncs from a snapshot, so durable delivery
would buy nothing for the bulk of the traffic, and no JetStream is needed.

``connect`` takes one server URL or several (a list, or comma-separated): the nodes of a
cluster joined by routes. The first connection tries each once and fails fast; once
connected it fails over to any other node (those given and those the cluster announces)
forever, and after each reconnection runs the ``on_reconnect`` handlers, with which the
agents and controllers resync what went by while they were away: each after a random delay
of up to ``RESYNC_SPREAD`` seconds, so that the thousands of agents of a node that died do
not all ask the controllers at the same instant. Publishing while
reconnecting is buffered (up to ``PENDING_BYTES``) and sent once connected again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSub
from nats.errors import Error as NatsError

from cascade.errors import Unavailable
from cascade.fabric.transports.base import (
    Handler,
    Message,
    ReconnectHandler,
    Subscription,
    Transport,
    validate_subject,
)

log = logging.getLogger(__name__)

DEFAULT_SERVERS = "nats://127.0.0.1:4222"
CONNECT_TIMEOUT = 2  # seconds per server on the first connection
RECONNECT_WAIT = 1  # seconds before a server just tried is tried again
PENDING_BYTES = 8 * 1024 * 1024  # published while reconnecting, sent once connected
RESYNC_SPREAD = 1.0  # seconds over which the reconnect handlers are spread


def server_list(servers: str | Sequence[str]) -> list[str]:
    """The URLs of ``servers``: a list, or one string of comma-separated URLs."""
    if isinstance(servers, str):
        servers = servers.split(",")
    urls = [url.strip() for url in servers if url.strip()]
    if not urls:
        raise Unavailable("no NATS server given")
    return urls


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


class _Events:
    """The connection's callbacks: errors logged (and the last kept, for the message when
    the first connection fails) and the reconnect handlers run, spread over time."""

    def __init__(self) -> None:
        self.connected = False
        self.last_error = ""
        self.handlers: list[ReconnectHandler] = []
        self._resyncing: set[asyncio.Task[None]] = set()
        self.client: Client | None = None  # once connected

    async def error(self, error: Exception) -> None:
        # Quiet while the first connection is tried: its failure becomes one Unavailable;
        # once connected, each error is a warning.
        self.last_error = str(error) or type(error).__name__
        (log.warning if self.connected else log.debug)("nats: %s", error)

    async def reconnected(self) -> None:
        log.warning("nats: reconnected to %s", _url(self.client) if self.client else "?")
        for handler in self.handlers:
            task = asyncio.get_running_loop().create_task(self._resync(handler))
            self._resyncing.add(task)
            task.add_done_callback(self._resyncing.discard)

    @staticmethod
    async def _resync(handler: ReconnectHandler) -> None:
        await asyncio.sleep(random.uniform(0, RESYNC_SPREAD))
        try:
            await handler()
        except Exception:
            log.exception("fabric: resync after reconnecting failed")


class NatsTransport(Transport):
    def __init__(self, nc: Client, servers: list[str], events: _Events) -> None:
        self._nc = nc
        self.servers = servers
        self._events = events

    @classmethod
    async def connect(
        cls,
        servers: str | Sequence[str] = DEFAULT_SERVERS,
        name: str | None = None,
        *,
        randomize: bool = True,
    ) -> NatsTransport:
        """Connect to one of ``servers``, failing fast with ``Unavailable`` when none
        answers; once connected, reconnect forever. ``randomize=False`` tries them in the
        order given (the first connection and every reconnection), else in random order,
        which spreads clients over a cluster's nodes.

        nats-py gives up on the first connection after ``max_reconnect_attempts`` failures
        per server (1: each server is tried twice, without waiting), and the limit is lifted
        once connected."""
        urls = server_list(servers)
        events = _Events()
        try:
            nc = await nats.connect(
                urls,
                name=name,
                connect_timeout=CONNECT_TIMEOUT,
                max_reconnect_attempts=1,
                reconnect_time_wait=0,
                dont_randomize=not randomize,
                pending_size=PENDING_BYTES,
                error_cb=events.error,
                reconnected_cb=events.reconnected,
            )
        except (OSError, TimeoutError, NatsError) as error:
            reason = events.last_error or str(error) or type(error).__name__
            raise Unavailable(f"cannot connect to NATS at {','.join(urls)}: {reason}") from None
        events.connected, events.client = True, nc
        nc.options.update(max_reconnect_attempts=-1, reconnect_time_wait=RECONNECT_WAIT)
        return cls(nc, urls, events)

    @property
    def connected_url(self) -> str | None:
        """The server this connection is on now (None while reconnecting)."""
        return _url(self._nc) if self._nc.is_connected else None

    def on_reconnect(self, handler: ReconnectHandler) -> None:
        self._events.handlers.append(handler)

    def traffic(self) -> tuple[int, int, int, int]:
        """Messages and bytes this connection published, then those delivered to it."""
        stats = self._nc.stats
        return stats["out_msgs"], stats["out_bytes"], stats["in_msgs"], stats["in_bytes"]

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
        """Drain (deliver what has arrived, send what is buffered) and close; while
        reconnecting there is nothing to drain and it closes at once."""
        if self._nc.is_closed:
            return
        try:
            await self._nc.drain()
        except NatsError as error:
            log.debug("nats drain: %s", error)
        finally:
            await self._nc.close()


def _url(nc: Client) -> str:
    url = nc.connected_url
    return f"{url.scheme}://{url.netloc}" if url is not None else "?"
