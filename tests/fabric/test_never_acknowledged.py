"""A host whose agent never acknowledged is nudged until it does: its first snapshot
request lost (or no controller subscribed yet), the snapshot lost, or its first
acknowledgement lost. A host with no ports is at revision 0, level with its goal, so without
this nothing would ever ask again and it would never be heard from."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cascade.fabric.addressing import host_subject
from cascade.fabric.agent import Agent
from cascade.fabric.controller import ACK_SUBJECT, SYNC_SUBJECT, FabricController
from cascade.fabric.dataplane.memory import MemoryDataplane
from cascade.fabric.goal import GoalStore, PortSpec
from cascade.fabric.messages import Ack
from cascade.fabric.transports.memory import MemoryTransport
from tests.fabric.fleet_helpers import actual, expected, goal_store, setup_goal, until


class LosesFirst(MemoryTransport):
    """The in-process transport, losing the first message published on one subject."""

    def __init__(self, subject: str) -> None:
        super().__init__()
        self.subject = subject
        self.lost = False

    async def publish(self, subject: str, data: bytes) -> None:
        if subject == self.subject and not self.lost:
            self.lost = True
            return
        await super().publish(subject, data)


def acknowledged(goal: GoalStore, host: str) -> bool:
    status = goal.tracking.host(host)
    return status is not None and status["acked_at"] is not None


async def converges(goal: GoalStore, bus: MemoryTransport, controller_first: bool) -> None:
    """An agent on host h0 acknowledges its (empty) goal, then applies a port added to it.
    Without ``controller_first`` its first request reaches nobody."""
    controller = FabricController(goal, bus, flush_interval=0.01, nudge_after=0.2)
    agent = Agent("h0", bus, MemoryDataplane("192.0.2.1"), resync_after=0.1)
    try:
        if controller_first:
            await controller.start()
        await agent.start()
        if not controller_first:
            await until(lambda: bus.published > 0)  # the request, with nobody to receive it
            assert bus.deliveries == 0
            await controller.start()
        await until(lambda: acknowledged(goal, agent.host))
        assert agent.revision == 0
        spec = PortSpec("p1", "n1", agent.host, "02:00:00:00:00:01", "10.1.0.2")
        change = goal.add_port(spec)
        await controller.publish(change)
        assert await controller.wait(change, timeout=20) == 0
        assert actual(agent) == expected(goal, agent.host)
        assert set(agent.dataplane.ports()) == {"p1"}
    finally:
        await agent.stop()
        await controller.close()
        await bus.close()


def test_hosts_never_acknowledged_are_nudged_but_not_reported_lagging(tmp_path: Path) -> None:
    db, goal = goal_store(tmp_path)
    setup_goal(goal, 2)
    tracking = goal.tracking
    assert tracking.lagging() == []  # nothing to apply: converged for operators
    assert tracking.lagging(unacknowledged=True) == ["h0", "h1"]
    tracking.record_acks({"h0": Ack(1, 0, {})})
    assert tracking.lagging(unacknowledged=True) == ["h1"]
    assert tracking.lagging(["h0"], unacknowledged=True) == []
    db.dispose()


@pytest.mark.parametrize("lost", ["sync request", "snapshot", "ack"])
def test_an_agent_whose_first_exchange_is_lost_converges(tmp_path: Path, lost: str) -> None:
    db, goal = goal_store(tmp_path)
    setup_goal(goal, 1)
    subject = {"sync request": SYNC_SUBJECT, "snapshot": host_subject("h0"), "ack": ACK_SUBJECT}
    bus = LosesFirst(subject[lost])
    asyncio.run(converges(goal, bus, controller_first=True))
    assert bus.lost
    db.dispose()


def test_an_agent_started_before_any_controller_gets_its_snapshot(tmp_path: Path) -> None:
    """Its first request reaches nobody (core NATS keeps nothing for later)."""
    db, goal = goal_store(tmp_path)
    setup_goal(goal, 1)
    asyncio.run(converges(goal, MemoryTransport(), controller_first=False))
    db.dispose()
