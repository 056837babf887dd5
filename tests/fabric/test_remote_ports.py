"""Remote ports (a port at another site: a neighbour at that site's tunnel endpoint), port
security and rule updates, through the goal store, the controller and in-process agents on
memory dataplanes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from cascade.errors import BadRequest, Conflict, NotFound
from cascade.fabric import messages
from cascade.fabric.addressing import network_subject
from cascade.fabric.agent import Agent
from cascade.fabric.controller import FabricController
from cascade.fabric.dataplane.base import LocalPort, Neighbour
from cascade.fabric.dataplane.memory import MemoryDataplane
from cascade.fabric.goal import GoalChange, GoalStore, PortSpec, RemotePortSpec
from cascade.fabric.messages import Ack
from cascade.fabric.transports.memory import MemoryTransport
from tests.fabric.fleet_helpers import actual, expected, goal_store, setup_goal, until

REMOTE_VTEP = "198.51.100.7"  # the other site's host
RULE = {"direction": "ingress", "protocol": "tcp", "port_min": 22, "port_max": 22}


def local(i: int, host: str, port_security: bool = False) -> PortSpec:
    mac, ip = f"02:00:00:00:00:{i:02x}", f"10.1.0.{i}"
    return PortSpec(f"p{i}", "n1", host, mac, ip, port_security=port_security)


def remote(i: int, network: str = "n1", vtep: str = REMOTE_VTEP) -> RemotePortSpec:
    return RemotePortSpec(f"r{i}", network, f"02:00:00:00:01:{i:02x}", f"10.1.1.{i}", vtep)


@asynccontextmanager
async def fabric(
    goal: GoalStore, names: list[str]
) -> AsyncIterator[tuple[FabricController, list[Agent]]]:
    """A controller and one started agent per host, all stopped and closed again whatever
    the test did."""
    bus = MemoryTransport()
    controller = FabricController(goal, bus, flush_interval=0.01, nudge_after=0.2)
    agents = [Agent(n, bus, MemoryDataplane(f"192.0.2.{i + 1}")) for i, n in enumerate(names)]
    try:
        await controller.start()
        for agent in agents:
            await agent.start()
        await until(lambda: all(a.revision >= 0 for a in agents))
        yield controller, agents
    finally:
        for agent in agents:
            await agent.stop()
        await controller.close()
        await bus.close()


async def apply(controller: FabricController, *changes: GoalChange) -> None:
    """Publish each change and wait until every host it concerns applied it."""
    for change in changes:
        await controller.publish(change)
        assert await controller.wait(change, timeout=20) == 0


def test_a_remote_port_reaches_every_member_with_its_vtep(
    tmp_path: Path, database_url: str
) -> None:
    """Members get the remote port at its own vtep and drop it when it is removed; a host
    that is not on the network gets nothing, and one that joins later gets it with the
    table; the hosts' own revisions do not move."""
    db, goal = goal_store(tmp_path, database_url)
    names = setup_goal(goal, 3)
    here = Neighbour("02:00:00:00:01:01", "10.1.1.1", REMOTE_VTEP)

    async def run() -> None:
        async with fabric(goal, names) as (controller, (h0, h1, h2)):
            await apply(controller, goal.add_port(local(1, "h0")), goal.add_port(local(2, "h1")))
            host_revisions = {h["name"]: h["revision"] for h in goal.tracking.hosts()}
            added = goal.add_remote_port(remote(1))
            assert (added.host, added.members) == (None, 2)
            assert [o.subject for o in added.outgoing] == [network_subject("n1")]
            await apply(controller, added)
            for agent in (h0, h1):
                assert agent.dataplane.neighbours("n1")["r1"] == here
                assert actual(agent) == expected(goal, agent.host)
                assert "r1" not in agent.dataplane.ports()
            assert h2.dataplane.networks() == {}
            assert {h["name"]: h["revision"] for h in goal.tracking.hosts()} == host_revisions
            await apply(controller, goal.add_port(local(3, "h2")))  # h2 joins: the table has it
            assert h2.dataplane.neighbours("n1")["r1"] == here
            assert actual(h2) == expected(goal, "h2")
            removed = goal.remove_port("r1")
            assert (removed.host, removed.members) == (None, 3)
            await apply(controller, removed)
            for agent in (h0, h1, h2):
                assert "r1" not in agent.dataplane.neighbours("n1")
                assert actual(agent) == expected(goal, agent.host)
            assert goal.port("r1") is None

    asyncio.run(run())
    db.dispose()


def test_a_restarted_agent_gets_remote_ports_from_the_snapshot(tmp_path: Path) -> None:
    """The table a host fetches (more entries than one page) carries remote ports at their
    own vteps, local ones at their hosts'."""
    db, goal = goal_store(tmp_path)  # pages of 3 entries
    names = setup_goal(goal, 2)
    for i in range(1, 5):
        goal.add_remote_port(remote(i))
    goal.add_port(local(1, "h0"))
    goal.add_port(local(2, "h1"))

    async def run() -> None:
        async with fabric(goal, names) as (_, (h0, h1)):
            await until(lambda: not goal.tracking.lagging())
            for agent in (h0, h1):
                assert actual(agent) == expected(goal, agent.host)
            table = h0.dataplane.neighbours("n1")
            assert len(table) == 6
            assert {table[f"r{i}"].vtep for i in range(1, 5)} == {REMOTE_VTEP}
            assert (table["p1"].vtep, table["p2"].vtep) == ("192.0.2.1", "192.0.2.2")

    asyncio.run(run())
    db.dispose()


def test_wait_on_a_remote_port_counts_the_members_only(tmp_path: Path, database_url: str) -> None:
    db, goal = goal_store(tmp_path, database_url)
    setup_goal(goal, 3)
    goal.add_port(local(1, "h0"))
    goal.add_port(local(2, "h1"))
    tracking = goal.tracking
    tracking.record_acks({"h0": Ack(1, 1, {"n1": 2}), "h1": Ack(1, 1, {"n1": 2})})
    change = goal.add_remote_port(remote(1))
    assert tracking.pending(change) == 2
    assert sorted(tracking.lagging()) == ["h0", "h1"]  # h2 is on no network: not concerned
    tracking.record_acks({"h0": Ack(2, 1, {"n1": 3})})
    assert tracking.pending(change) == 1
    tracking.record_acks({"h1": Ack(2, 1, {"n1": 3})})
    assert tracking.pending(change) == 0
    alone = goal.add_remote_port(remote(2, "n2"))  # nobody is on n2
    assert (alone.members, tracking.pending(alone)) == (0, 0)

    async def wait_alone() -> int:
        """Settled by the waiter itself: the database is not rechecked within the deadline."""
        bus = MemoryTransport()
        try:
            waiting = FabricController(goal, bus).wait(alone, timeout=600, recheck=600)
            return await asyncio.wait_for(waiting, 30)
        finally:
            await bus.close()

    assert asyncio.run(wait_alone()) == 0
    db.dispose()


def test_remote_ports_are_checked_like_ports(tmp_path: Path) -> None:
    db, goal = goal_store(tmp_path)
    setup_goal(goal, 1)
    goal.add_port(local(1, "h0"))
    goal.add_remote_port(remote(1))

    def spec(mac: str = "02:00:00:00:01:02", ip: str = "10.1.1.2", **other: str) -> RemotePortSpec:
        fields = {"id": "r2", "network_id": "n1", "vtep": REMOTE_VTEP, **other}
        return RemotePortSpec(mac=mac, ip=ip, **fields)

    cases = [
        (spec(vtep="site-b"), BadRequest, "vtep"),
        (spec(network_id="nope"), NotFound, "network"),
        (spec(mac="zz"), BadRequest, "mac"),
        (spec(ip="10.9.0.1"), BadRequest, "outside"),
        (spec(mac="02:00:00:00:00:01"), Conflict, "already"),  # p1's
        (spec(ip="10.1.0.1"), Conflict, "already"),  # p1's
        (spec(id="r1"), Conflict, "exists"),
        (spec(id="a.b"), BadRequest, "token"),
    ]
    for wrong, error, words in cases:
        with pytest.raises(error, match=words):
            goal.add_remote_port(wrong)
    with pytest.raises(Conflict, match="already"):  # a local port cannot take a remote's ip
        goal.add_port(PortSpec("p2", "n1", "h0", "02:00:00:00:00:02", "10.1.1.1"))
    assert goal.port("r1") == {
        "id": "r1",
        "kind": "remote",
        "network_id": "n1",
        "host": None,
        "vtep": REMOTE_VTEP,
        "mac": "02:00:00:00:01:01",
        "ip": "10.1.1.1",
        "security_rules": [],
        "port_security": False,
        "allowed_ips": [],
        "router": None,
        "gateway": None,
        "routes": [],
    }
    with pytest.raises(BadRequest, match="remote"):
        goal.update_port("r1", [RULE], True)
    with pytest.raises(NotFound, match="ghost"):
        goal.update_port("ghost", [], False)
    with pytest.raises(NotFound, match="ghost"):
        goal.remove_port("ghost")
    with pytest.raises(Conflict, match="ports"):
        goal.delete_network("n1")
    db.dispose()


def test_update_port_changes_what_the_agent_holds(tmp_path: Path, database_url: str) -> None:
    """New rules and port security reach the port's host whole; the network's revision and
    the other hosts are untouched; a host fetching its snapshot afterwards gets them too."""
    db, goal = goal_store(tmp_path, database_url)
    names = setup_goal(goal, 2)

    async def run() -> None:
        async with fabric(goal, names) as (controller, (h0, h1)):
            await apply(controller, goal.add_port(local(1, "h0", port_security=True)))
            await apply(controller, goal.add_port(local(2, "h1")))
            assert h0.dataplane.ports()["p1"].port_security is True
            received = h1.received
            change = goal.update_port("p1", [RULE], False)
            assert (change.host, change.network_id, change.members) == ("h0", None, 0)
            await apply(controller, change)
            held = h0.dataplane.ports()["p1"]
            assert (held.security_rules, held.port_security) == ((RULE,), False)
            assert h0.networks["n1"] == 2  # the table did not change
            await apply(controller, goal.update_port("p1", [], True))
            held = h0.dataplane.ports()["p1"]
            assert (held.security_rules, held.port_security) == ((), True)
            assert h1.received == received  # nothing for the other host
        assert goal.port("p1") == {
            "id": "p1",
            "kind": "local",
            "network_id": "n1",
            "host": "h0",
            "vtep": None,
            "mac": "02:00:00:00:00:01",
            "ip": "10.1.0.1",
            "security_rules": [],
            "port_security": True,
            "allowed_ips": [],
            "router": None,
            "gateway": None,
            "routes": [],
        }
        snapshot = messages.for_me(goal.host_snapshot("h0").data, messages.host_prefix("h0"))
        assert snapshot is not None
        [entry] = snapshot["ports"]
        assert messages.local_port(entry).port_security is True

    asyncio.run(run())
    db.dispose()


def test_port_entries_carry_port_security_and_old_ones_still_decode() -> None:
    port = LocalPort("p1", "n1", 5001, "02:00:00:00:00:01", "10.1.0.1/16", (RULE,), True)
    entry = messages.port_entry(port)
    assert entry[6] == 1
    assert messages.local_port(messages.decode(messages.encode({"e": entry}))["e"]) == port
    old = ["p1", "n1", 5001, "02:00:00:00:00:01", "10.1.0.1/16", [RULE]]  # before port security
    assert messages.local_port(old) == LocalPort(*old[:5], (RULE,), False)  # type: ignore[arg-type]
