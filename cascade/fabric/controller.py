"""The control plane's end of the fabric: publish changes, answer resyncs, track acks.

Every API process may run one; they share the agents' ``sync`` and ``ack`` subjects as one
queue group, so each request is answered once and the load spreads. Acknowledgements are
merged in memory and written in batches (one statement per batch), and a host that still
lags after ``nudge_after`` seconds, or has never acknowledged anything, gets a goal message
telling it which revisions it should hold, which makes it resync whatever it lost (a dropped
message or snapshot request, an agent that was away) and acknowledge again (a lost ack).

On a NATS cluster a controller or agent whose node dies fails over to another node: the
messages in flight through the dead node are lost. An agent that reconnects asks for its
goal (a ``sync`` request with ``g``), answered with the same goal message; a controller
that reconnects nudges the lagging hosts at once instead of after two scans. A controller
that dies loses only the acknowledgements it had not written yet and the requests it was
answering: its hosts show as lagging and the other controllers of the queue group nudge them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from cascade.errors import CascadeError
from cascade.fabric import messages
from cascade.fabric.addressing import shared_subject
from cascade.fabric.goal import GoalChange, GoalStore
from cascade.fabric.messages import Ack
from cascade.fabric.snapshots import Outgoing
from cascade.fabric.transports import open_transport
from cascade.fabric.transports.base import Message, Subscription, Transport

log = logging.getLogger(__name__)

QUEUE_GROUP = "cascade-fabric-controllers"
ACK_SUBJECT = shared_subject("ack")
SYNC_SUBJECT = shared_subject("sync")

Acks = dict[str, Ack]


class _Waiter:
    """Counts the acknowledgements that show one change applied, as they arrive."""

    def __init__(self, change: GoalChange) -> None:
        self.change = change
        self.acked: set[str] = set()
        self.host_done = change.host is None
        self.done = asyncio.Event()
        if self.host_done and not change.members:  # a remote port on a network nobody is on
            self.done.set()

    def saw(self, body: messages.Body) -> None:
        change, host, nets = self.change, body["h"], body["n"]
        target = change.network_revision
        if host == change.host:
            applied = nets.get(change.network_id, target) if change.network_id else target
            self.host_done = body["r"] >= change.host_revision and applied >= target
        elif change.network_id is not None and nets.get(change.network_id, 0) >= target:
            self.acked.add(host)
        if self.host_done and len(self.acked) >= change.members:
            self.done.set()


def merge_ack(acks: Acks, body: messages.Body) -> None:
    """Keep, per host, its latest acknowledgement (by the agent's clock), whole: the agent
    states everything it holds, and a network it dropped and is fetching again must show
    as behind even though an older acknowledgement had it up to date."""
    known = acks.get(body["h"])
    if known is None or body["s"] > known.sequence:
        acks[body["h"]] = Ack(body["s"], body["r"], body["n"], bool(body.get("e", 0)))


class FabricController:
    def __init__(
        self,
        goal: GoalStore,
        transport: Transport,
        *,
        flush_interval: float = 0.05,
        nudge_after: float = 2.0,
        nudge_batch: int = 1000,
    ) -> None:
        self.goal = goal
        self.transport = transport
        self.flush_interval = flush_interval
        self.nudge_after = nudge_after
        self.nudge_batch = nudge_batch
        self.sent_messages = 0
        self.sent_bytes = 0
        self.acks_received = 0
        self._acks: Acks = {}
        self._waiters: set[_Waiter] = set()
        self._answering: set[asyncio.Task[None]] = set()
        self._flushing = asyncio.Lock()
        self._subs: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._subs = [
            await self.transport.subscribe(ACK_SUBJECT, self._on_ack, queue=QUEUE_GROUP),
            await self.transport.subscribe(SYNC_SUBJECT, self._on_sync, queue=QUEUE_GROUP),
        ]
        self.transport.on_reconnect(self._resync)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._flush_loop()), loop.create_task(self._nudge_loop())]

    async def close(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()

    async def publish(self, outgoing: GoalChange | Iterable[Outgoing]) -> None:
        items = outgoing.outgoing if isinstance(outgoing, GoalChange) else outgoing
        for item in items:
            await self.transport.publish(item.subject, item.data)
            self.sent_messages += 1
            self.sent_bytes += len(item.data)

    async def wait(self, change: GoalChange, timeout: float, recheck: float = 1.0) -> int:
        """Wait until every host affected by ``change`` applied it; return how many have not
        (0 when converged) once done or after ``timeout`` seconds.

        Acknowledgements reaching this controller settle it as they arrive; those that
        went to another controller of the queue group are seen in the database, checked
        every ``recheck`` seconds alongside."""
        waiter = _Waiter(change)
        self._waiters.add(waiter)
        racers = [
            asyncio.ensure_future(waiter.done.wait()),
            asyncio.ensure_future(self._settled_in_db(change, recheck)),
        ]
        try:
            done, _ = await asyncio.wait(
                racers, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            self._waiters.discard(waiter)
            for racer in racers:
                racer.cancel()
            await asyncio.gather(*racers, return_exceptions=True)
        if done:
            return 0
        await self.flush()
        return await asyncio.to_thread(self.goal.tracking.pending, change)

    async def _settled_in_db(self, change: GoalChange, recheck: float) -> None:
        while True:
            await asyncio.sleep(recheck)
            await self.flush()
            if await asyncio.to_thread(self.goal.tracking.pending, change) == 0:
                return

    async def flush(self) -> None:
        """Write the acknowledgements received so far (after any write in progress)."""
        async with self._flushing:
            batch, self._acks = self._acks, {}
            if batch:
                await asyncio.to_thread(self.goal.tracking.record_acks, batch)

    async def _on_ack(self, message: Message) -> None:
        self.acks_received += 1
        body = messages.decode(message.data)
        merge_ack(self._acks, body)
        for waiter in self._waiters:
            waiter.saw(body)

    async def _on_sync(self, message: Message) -> None:
        """Answer in a task of its own: building a large snapshot must not hold up the
        acknowledgements and requests queued behind this one."""
        task = asyncio.get_running_loop().create_task(self._answer_sync(message))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer_sync(self, message: Message) -> None:
        body = messages.decode(message.data)
        host, network = body["h"], body.get("n")
        try:
            if body.get("g"):
                replies = [await asyncio.to_thread(self.goal.goal, host)]
            elif network is None:
                replies = [await asyncio.to_thread(self.goal.host_snapshot, host)]
            else:
                replies = await asyncio.to_thread(self.goal.network_snapshot, network, host)
        except CascadeError as error:
            log.warning("fabric: cannot answer %s's sync request: %s", host, error)
            return
        await self.publish(replies)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
            except Exception:
                log.exception("fabric: recording acknowledgements failed")

    async def _lagging(self) -> set[str]:
        hosts = await asyncio.to_thread(
            self.goal.tracking.lagging, None, self.nudge_batch, unacknowledged=True
        )
        return set(hosts)

    async def _nudge(self, hosts: set[str]) -> None:
        for host in sorted(hosts):
            await self.publish([await asyncio.to_thread(self.goal.goal, host)])

    async def _nudge_loop(self) -> None:
        """Nudge hosts that lagged, or had never acknowledged, at two consecutive scans
        ``nudge_after`` apart."""
        seen: set[str] = set()
        while True:
            await asyncio.sleep(self.nudge_after)
            try:
                lagging = await self._lagging()
                await self._nudge(lagging & seen)
                seen = lagging
            except Exception:
                log.exception("fabric: nudging lagging hosts failed")

    async def _resync(self) -> None:
        """Back on the bus: what this controller published just before it lost its node
        may never have been delivered, so every lagging host is nudged now."""
        await self.flush()
        await self._nudge(await self._lagging())


async def start_controller(goal: GoalStore, fabric_url: str) -> FabricController:
    """A started controller on the bus ``fabric_url`` names (the transport closed again if
    the start fails)."""
    transport = await open_transport(fabric_url)
    started = FabricController(goal, transport)
    try:
        await started.start()
    except BaseException:
        await transport.close()
        raise
    return started


async def stop_controller(controller: FabricController) -> None:
    """Stop ``controller`` and close its transport."""
    try:
        await controller.close()
    finally:
        await controller.transport.close()
