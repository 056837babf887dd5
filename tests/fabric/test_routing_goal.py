"""A port's routing through the goal store, the controller and in-process agents on memory
dataplanes: a router's interface with its router and routes, a VM's port with its gateway,
both carried to the port's host and changed with a host delta alone; what is not routing
is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cascade.errors import BadRequest
from cascade.fabric import messages
from cascade.fabric.dataplane.base import LocalPort
from cascade.fabric.goal import PortSpec
from tests.fabric.fleet_helpers import goal_store, setup_goal
from tests.fabric.test_remote_ports import apply, fabric, remote

ROUTE = ("10.9.0.0/24", "10.1.0.2")


def test_routing_reaches_the_port_host_and_changes_with_a_host_delta(
    tmp_path: Path, database_url: str
) -> None:
    db, goal = goal_store(tmp_path, database_url)
    names = setup_goal(goal, 2)
    interface = PortSpec(
        "gw", "n1", "h0", "02:00:00:00:00:fe", "10.1.0.254", router="r1", routes=(ROUTE,)
    )
    vm = PortSpec("p1", "n1", "h1", "02:00:00:00:00:01", "10.1.0.1", gateway="10.1.0.254")

    async def run() -> None:
        async with fabric(goal, names) as (controller, (h0, h1)):
            await apply(controller, goal.add_port(interface), goal.add_port(vm))
            held = h0.dataplane.ports()["gw"]
            assert (held.router, held.routes, held.gateway) == ("r1", (ROUTE,), None)
            assert h1.dataplane.ports()["p1"].gateway == "10.1.0.254"
            received = h1.received
            change = goal.set_routing("gw", None, [])
            assert (change.host, change.network_id, len(change.outgoing)) == ("h0", None, 1)
            await apply(controller, change)
            assert h0.dataplane.ports()["gw"].routes == ()
            assert h0.dataplane.ports()["gw"].router == "r1"  # the router stays
            assert h1.received == received  # nothing for the other host

    asyncio.run(run())
    snapshot = messages.for_me(goal.host_snapshot("h1").data, messages.host_prefix("h1"))
    assert snapshot is not None
    assert messages.local_port(snapshot["ports"][0]).gateway == "10.1.0.254"  # from the row
    goal.add_remote_port(remote(1))
    with pytest.raises(BadRequest, match="remote"):
        goal.set_routing("r1", "10.1.0.254", [])
    with pytest.raises(BadRequest, match="destination"):
        goal.set_routing("p1", None, [("10.9.0.300/24", "10.1.0.2")])
    with pytest.raises(BadRequest, match="gateway"):
        goal.set_routing("p1", "nowhere", [])
    db.dispose()


def test_port_entries_carry_routing() -> None:
    port = LocalPort(
        "gw", "n1", 5001, "02:00:00:00:00:fe", "10.1.0.254/16", router="r1", routes=(ROUTE,)
    )
    entry = messages.port_entry(port)
    assert messages.local_port(messages.decode(messages.encode({"e": entry}))["e"]) == port
    vm = LocalPort("p1", "n1", 5001, "02:00:00:00:00:01", "10.1.0.1/16", gateway="10.1.0.254")
    assert messages.local_port(messages.port_entry(vm)) == vm
