"""An agent whose first snapshot never comes (its request lost, the reply lost, or no
controller subscribed yet) asks again until it arrives, then converges: a host with no
ports sits at revision 0, which no scan ever counts as lagging, so nobody would nudge it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cascade.fabric.addressing import host_subject
from cascade.fabric.agent import Agent
from cascade.fabric.controller import SYNC_SUBJECT, FabricController
from cascade.fabric.dataplane.memory import MemoryDataplane
from cascade.fabric.goal import GoalStore, PortSpec
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


async def converges(goal: GoalStore, agent: Agent, controller: FabricController) -> None:
    """The agent acknowledges its (empty) goal, then applies a port added to it."""
    await until(lambda: acknowledged(goal, agent.host))
    assert agent.revision == 0
    change = goal.add_port(PortSpec("p1", "n1", agent.host, "02:00:00:00:00:01", "10.1.0.2"))
    await controller.publish(change)
    assert await controller.wait(change, timeout=20) == 0
    assert actual(agent) == expected(goal, agent.host)
    assert set(agent.dataplane.ports()) == {"p1"}


@pytest.mark.parametrize("lost", ["request", "reply"])
def test_an_agent_whose_first_snapshot_is_lost_asks_again(tmp_path: Path, lost: str) -> None:
    db, goal = goal_store(tmp_path)
    setup_goal(goal, 1)

    async def run() -> None:
        bus = LosesFirst(SYNC_SUBJECT if lost == "request" else host_subject("h0"))
        controller = FabricController(goal, bus, flush_interval=0.01, nudge_after=0.2)
        await controller.start()
        agent = Agent("h0", bus, MemoryDataplane("192.0.2.1"), resync_after=0.1)
        try:
            await agent.start()
            await until(lambda: bus.lost)
            await converges(goal, agent, controller)
        finally:
            await agent.stop()
            await controller.close()
            await bus.close()

    asyncio.run(run())
    db.dispose()


def test_an_agent_started_before_any_controller_gets_its_snapshot(tmp_path: Path) -> None:
    """Its first request reaches nobody (core NATS keeps nothing for later)."""
    db, goal = goal_store(tmp_path)
    setup_goal(goal, 1)

    async def run() -> None:
        bus = MemoryTransport()
        controller = FabricController(goal, bus, flush_interval=0.01, nudge_after=0.2)
        agent = Agent("h0", bus, MemoryDataplane("192.0.2.1"), resync_after=0.1)
        try:
            await agent.start()
            await until(lambda: bus.published > 0)  # the request, with nobody to receive it
            assert bus.deliveries == 0
            await controller.start()
            await converges(goal, agent, controller)
        finally:
            await agent.stop()
            await controller.close()
            await bus.close()

    asyncio.run(run())
    db.dispose()
