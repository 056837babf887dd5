"""Allowed addresses (Neutron's allowed address pairs) through the goal store, the controller
and in-process agents on memory dataplanes: carried with a port to its host and as the
port's neighbour entry to every host on its network, changed in place with one network
delta, and kept in the tables hosts fetch; port entries without them still decode."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cascade.errors import BadRequest
from cascade.fabric import messages
from cascade.fabric.dataplane.base import LocalPort, Neighbour
from cascade.fabric.goal import PortSpec, RemotePortSpec
from tests.fabric.fleet_helpers import actual, expected, goal_store, setup_goal
from tests.fabric.test_remote_ports import REMOTE_VTEP, apply, fabric

VIP = "10.1.0.200"


def test_allowed_ips_reach_the_port_and_its_neighbours_and_move_in_place(
    tmp_path: Path, database_url: str
) -> None:
    db, goal = goal_store(tmp_path, database_url)
    names = setup_goal(goal, 2)
    holder = PortSpec("p1", "n1", "h0", "02:00:00:00:00:01", "10.1.0.1", allowed_ips=(VIP,))
    other = PortSpec("p2", "n1", "h1", "02:00:00:00:00:02", "10.1.0.2")
    shadow = RemotePortSpec("r1", "n1", "02:00:00:00:01:01", "10.1.1.1", REMOTE_VTEP)

    async def run() -> None:
        async with fabric(goal, names) as (controller, (h0, h1)):
            await apply(controller, goal.add_port(holder), goal.add_port(other))
            await apply(controller, goal.add_remote_port(shadow))
            assert h0.dataplane.ports()["p1"].allowed_ips == (VIP,)
            assert h1.dataplane.neighbours("n1")["p1"].pairs == (VIP,)
            p2 = h1.dataplane.ports()["p2"]

            freed = goal.set_allowed_ips("p1", [])  # the holder frees it ...
            assert (freed.host, freed.network_id, len(freed.outgoing)) == ("h0", "n1", 2)
            taken = goal.set_allowed_ips("r1", [VIP])  # ... the remote port takes it
            assert (taken.host, taken.network_id, len(taken.outgoing)) == (None, "n1", 1)
            await apply(controller, freed, taken)
            assert h0.dataplane.ports()["p1"].allowed_ips == ()
            for agent in (h0, h1):
                table = agent.dataplane.neighbours("n1")
                assert (table["p1"].pairs, table["r1"].pairs) == ((), (VIP,))
                assert actual(agent) == expected(goal, agent.host)  # what a resync gets
            assert h1.dataplane.ports()["p2"] is p2  # the other port was not set again

    asyncio.run(run())
    assert goal.port("r1")["allowed_ips"] == [VIP]  # type: ignore[index]
    with pytest.raises(BadRequest, match="allowed ip"):
        goal.set_allowed_ips("p1", ["10.1.0.300"])
    db.dispose()


def test_entries_carry_allowed_ips_and_older_ones_decode() -> None:
    port = LocalPort("p1", "n1", 5001, "02:00:00:00:00:01", "10.1.0.1/16", (), True, (VIP,))
    entry = messages.port_entry(port)
    assert messages.local_port(messages.decode(messages.encode({"e": entry}))["e"]) == port
    assert len(messages.port_entry(LocalPort(*entry[:5]))) == 7  # nothing optional: 7 elements
    assert messages.local_port(entry[:7]).allowed_ips == ()  # from before allowed addresses
    neighbour = Neighbour("02:00:00:00:00:01", "10.1.0.1", "192.0.2.1", (VIP,))
    wire = messages.neighbour_entry("p1", neighbour)
    assert messages.neighbours([wire]) == {"p1": neighbour}
    assert messages.neighbours([wire[:4]])["p1"].pairs == ()
