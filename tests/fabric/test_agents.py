"""Agents over the in-process transport: changes reach exactly the hosts that need them,
and agents converge to exactly the goal state through drops, reordering and restarts."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from cascade.errors import BadRequest, Conflict, NotFound
from cascade.fabric import messages
from cascade.fabric.agent import Agent
from cascade.fabric.controller import ACK_SUBJECT, FabricController, merge_ack
from cascade.fabric.dataplane.memory import MemoryDataplane
from cascade.fabric.goal import GoalStore, PortSpec
from cascade.fabric.messages import Ack
from cascade.fabric.transports.base import Message
from cascade.fabric.transports.memory import MemoryTransport
from tests.fabric.fleet_helpers import actual, expected, goal_store, setup_goal, until


def port(i: int, host: str, network: str = "n1") -> PortSpec:
    return PortSpec(
        f"p{i}",
        network,
        host,
        f"02:00:00:00:{i // 256:02x}:{i % 256:02x}",
        f"10.1.{i // 250}.{i % 250 + 1}",
    )


async def converged(goal: GoalStore, agents: list[Agent]) -> bool:
    for agent in agents:
        if actual(agent) != expected(goal, agent.host):
            return False
    return not goal.tracking.lagging()


def test_changes_reach_the_hosts_on_the_network_only(tmp_path: Path, database_url: str) -> None:
    db, goal = goal_store(tmp_path, database_url)
    names = setup_goal(goal, 4)

    async def run() -> None:
        bus = MemoryTransport()
        controller = FabricController(goal, bus, flush_interval=0.01)
        await controller.start()
        agents = [Agent(n, bus, MemoryDataplane(f"192.0.2.{i + 1}")) for i, n in enumerate(names)]
        for agent in agents:
            await agent.start()
        changes = [goal.add_port(port(i, names[i % 3])) for i in range(7)]
        for change in changes:
            await controller.publish(change)
        assert await controller.wait(changes[-1], timeout=10) == 0
        await until(lambda: all(a.revision >= 0 for a in agents))
        for agent in agents[:3]:
            assert actual(agent) == expected(goal, agent.host)
        assert set(agents[0].dataplane.neighbours("n1")) == {f"p{i}" for i in range(7)}
        assert agents[3].dataplane.networks() == {}  # no port, no network, no traffic
        removal = goal.remove_port("p6")  # h0's port: h0 leaves nothing, others drop p6
        await controller.publish(removal)
        assert await controller.wait(removal, timeout=10) == 0
        assert "p6" not in agents[1].dataplane.neighbours("n1")
        for name in ("p0", "p3"):
            await controller.publish(goal.remove_port(name))
        await until(lambda: "n1" not in agents[0].dataplane.networks())
        assert agents[0].networks == {}
        await until(lambda: not goal.tracking.lagging(), timeout=10)  # acks written in bulk
        status = {h["name"]: h for h in goal.tracking.hosts()}
        assert all(h["converged"] and h["networks_behind"] == 0 for h in status.values())
        assert status["h1"]["applied_revision"] == status["h1"]["revision"] > 0
        assert status["h1"]["acked_at"] is not None
        await controller.close()
        await bus.close()

    asyncio.run(run())
    db.dispose()


@pytest.mark.parametrize(("drop_rate", "reorder"), [(0.3, False), (0.0, True), (0.2, True)])
def test_agents_converge_through_drops_and_reordering(
    tmp_path: Path, drop_rate: float, reorder: bool
) -> None:
    db, goal = goal_store(tmp_path)
    names = setup_goal(goal, 6)
    rng = random.Random(11)

    async def run() -> None:
        bus = MemoryTransport(drop_rate=drop_rate, reorder=reorder, seed=5)
        controller = FabricController(goal, bus, flush_interval=0.01, nudge_after=0.2)
        await controller.start()
        agents = [
            Agent(n, bus, MemoryDataplane(f"192.0.2.{i + 1}"), resync_after=0.1)
            for i, n in enumerate(names)
        ]
        for agent in agents:
            await agent.start()
        live: list[str] = []
        for i in range(60):
            if live and rng.random() < 0.3:
                change = goal.remove_port(live.pop(rng.randrange(len(live))))
            else:
                spec = port(i, rng.choice(names), rng.choice(["n1", "n2"]))
                change = goal.add_port(spec)
                live.append(spec.id)
            await controller.publish(change)
            await asyncio.sleep(0)
        deadline = asyncio.get_running_loop().time() + 30
        while not await converged(goal, agents):
            assert asyncio.get_running_loop().time() < deadline, goal.tracking.lagging()
            await asyncio.sleep(0.05)
        if drop_rate:
            assert sum(a.resyncs for a in agents) > 0
        await controller.close()
        await bus.close()

    asyncio.run(run())
    db.dispose()


def test_restarted_agent_converges_to_exactly_the_goal(tmp_path: Path) -> None:
    """The agent object dies (as after SIGKILL) but its dataplane keeps its tables; changes
    continue meanwhile; a new agent on the same dataplane removes stale entries and adds
    missing ones."""
    db, goal = goal_store(tmp_path)
    names = setup_goal(goal, 3)

    async def run() -> None:
        bus = MemoryTransport()
        controller = FabricController(goal, bus, flush_interval=0.01, nudge_after=0.2)
        await controller.start()
        dataplanes = [MemoryDataplane(f"192.0.2.{i + 1}") for i in range(3)]
        agents = [Agent(n, bus, d) for n, d in zip(names, dataplanes, strict=True)]
        for agent in agents:
            await agent.start()
        for i in range(6):
            await controller.publish(goal.add_port(port(i, names[i % 3], "n1")))
        await until(lambda: len(dataplanes[1].neighbours("n1")) == 6)
        await agents[1].stop()  # killed: no more messages reach it
        await controller.publish(goal.remove_port("p0"))
        await controller.publish(goal.remove_port("p1"))  # h1's own port
        await controller.publish(goal.add_port(port(10, names[1], "n2")))
        await controller.publish(goal.add_port(port(11, names[0], "n1")))
        assert "p0" in dataplanes[1].neighbours("n1")  # stale while it is away
        agents[1] = Agent(names[1], bus, dataplanes[1])
        await agents[1].start()
        deadline = asyncio.get_running_loop().time() + 20
        while not await converged(goal, agents):
            assert asyncio.get_running_loop().time() < deadline, goal.tracking.lagging()
            await asyncio.sleep(0.05)
        assert "p0" not in dataplanes[1].neighbours("n1")
        assert set(dataplanes[1].ports()) == {"p4", "p10"}
        await controller.close()
        await bus.close()

    asyncio.run(run())
    db.dispose()


def test_bad_goal_state_is_refused_with_a_reason(tmp_path: Path) -> None:
    db, goal = goal_store(tmp_path)
    setup_goal(goal, 2)
    goal.add_port(port(1, "h0"))
    cases = [
        (PortSpec("p2", "nope", "h0", "02:00:00:00:00:09", "10.1.0.9"), NotFound, "network"),
        (PortSpec("p2", "n1", "ghost", "02:00:00:00:00:09", "10.1.0.9"), NotFound, "host"),
        (PortSpec("p2", "n1", "h0", "zz", "10.1.0.9"), BadRequest, "mac"),
        (PortSpec("p2", "n1", "h0", "02:00:00:00:00:09", "10.9.0.0.1"), BadRequest, "ip"),
        (PortSpec("p2", "n1", "h0", "02:00:00:00:00:09", "10.2.0.1"), BadRequest, "outside"),
        (PortSpec("p1", "n1", "h1", "02:00:00:00:00:09", "10.1.0.9"), Conflict, "exists"),
        (PortSpec("p2", "n1", "h1", "02:00:00:00:00:01", "10.1.0.9"), Conflict, "already"),
        (PortSpec("a.b", "n1", "h1", "02:00:00:00:00:09", "10.1.0.9"), BadRequest, "token"),
    ]
    for spec, error, words in cases:
        with pytest.raises(error, match=words):
            goal.add_port(spec)
    with pytest.raises(Conflict, match="vni"):
        goal.create_network("n3", 5001, "10.3.0.0/16")
    with pytest.raises(Conflict, match="ports"):
        goal.delete_network("n1")
    with pytest.raises(Conflict, match="tunnel_ip"):
        goal.register_host("h0", "192.0.2.99")
    assert goal.tracking.lagging() == ["h0"]  # its port was never acknowledged
    db.dispose()


def test_the_latest_ack_wins_even_when_it_says_less(tmp_path: Path, database_url: str) -> None:
    """An agent that dropped a network and is fetching it again says 0 (or nothing) for it:
    that must show the host behind, and an older acknowledgement arriving late must not
    hide it again."""
    db, goal = goal_store(tmp_path, database_url)
    setup_goal(goal, 1)
    goal.add_port(port(1, "h0"))  # h0 at host revision 1, n1 at 1
    tracking = goal.tracking
    tracking.record_acks({"h0": Ack(10, 1, {"n1": 1})})
    assert tracking.lagging() == []
    tracking.record_acks({"h0": Ack(20, 1, {"n1": 0})})
    assert tracking.lagging() == ["h0"]
    tracking.record_acks({"h0": Ack(15, 1, {"n1": 1})})  # older, arriving late
    assert tracking.lagging() == ["h0"]
    tracking.record_acks({"h0": Ack(30, 1, {})})  # the network is missing altogether
    assert tracking.lagging() == ["h0"]
    tracking.record_acks({"h0": Ack(40, 1, {"n1": 1})})
    assert tracking.lagging() == []
    batch: dict[str, Ack] = {}
    for sequence, applied in ((5, 1), (7, 0), (6, 1)):
        merge_ack(batch, {"h": "h0", "s": sequence, "r": 1, "n": {"n1": applied}})
    assert batch["h0"] == Ack(7, 1, {"n1": 0})
    db.dispose()


def test_acks_say_whether_rules_are_enforced(tmp_path: Path, database_url: str) -> None:
    """Acknowledged is not enforced: a host holding a port with rules counts as not
    converged for rules until its agent says its dataplane enforces them."""
    db, goal = goal_store(tmp_path, database_url)
    setup_goal(goal, 2)
    rule = {"direction": "ingress", "protocol": "tcp", "port_min": 22, "port_max": 22}
    ruled = PortSpec("p1", "n1", "h0", "02:00:00:00:00:01", "10.1.0.2", (rule,))
    goal.add_port(ruled)
    goal.add_port(port(2, "h1"))
    tracking = goal.tracking
    tracking.record_acks({"h0": Ack(10, 1, {"n1": 2}), "h1": Ack(10, 1, {"n1": 2})})
    assert tracking.lagging() == []
    status = {h["name"]: h for h in tracking.hosts()}
    assert status["h0"]["converged"] is True
    assert (status["h0"]["ports_with_rules"], status["h0"]["rules_enforced"]) == (1, False)
    assert status["h1"]["rules_enforced"] is True  # nothing to enforce there
    assert tracking.rules_not_enforced() == 1
    assert tracking.rules_not_enforced(["h1"]) == 0
    tracking.record_acks({"h0": Ack(20, 1, {"n1": 2}, enforces_rules=True)})
    assert tracking.rules_not_enforced() == 0
    now = tracking.host("h0")
    assert now is not None
    assert (now["enforces_rules"], now["rules_enforced"], now["converged"]) == (True, True, True)
    batch: dict[str, Ack] = {}
    merge_ack(batch, {"h": "h0", "s": 30, "r": 1, "n": {"n1": 2}})  # no "e": not enforced
    merge_ack(batch, {"h": "h1", "s": 30, "r": 1, "n": {"n1": 2}, "e": 1})
    assert (batch["h0"].enforces_rules, batch["h1"].enforces_rules) == (False, True)
    db.dispose()


class EnforcingDataplane(MemoryDataplane):
    enforces_rules = True


@pytest.mark.parametrize("enforcing", [False, True])
def test_an_agent_says_whether_its_dataplane_enforces_rules(enforcing: bool) -> None:
    async def run() -> messages.Body:
        bus = MemoryTransport()
        acks: list[bytes] = []

        async def keep(message: Message) -> None:
            acks.append(message.data)

        await bus.subscribe(ACK_SUBJECT, keep)
        plane = EnforcingDataplane if enforcing else MemoryDataplane
        agent = Agent("h0", bus, plane("192.0.2.1"))
        await agent.start(snapshot={"t": "hs", "r": 0, "ports": []})
        await until(lambda: bool(acks))
        await agent.stop()
        return messages.decode(acks[-1])

    ack = asyncio.run(run())
    # a dataplane that cannot enforce rules adds nothing to the acknowledgement
    assert ack.get("e") == (1 if enforcing else None)
