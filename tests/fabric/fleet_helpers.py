"""Helpers for fabric tests: a goal store on a fresh database and the exact expected state
of a host, read back from the goal store's own snapshots."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from cascade.db import Database
from cascade.db.migrate import upgrade
from cascade.fabric import messages
from cascade.fabric.agent import Agent
from cascade.fabric.dataplane.base import Neighbour
from cascade.fabric.goal import GoalStore


def goal_store(tmp_path: Path, url: str | None = None) -> tuple[Database, GoalStore]:
    db = Database(url or f"sqlite:///{tmp_path / 'fabric.db'}")
    upgrade(db)
    return db, GoalStore(db, page_size=3)


def setup_goal(goal: GoalStore, hosts: int) -> list[str]:
    """Hosts h0.. at 192.0.2.1.. and networks n1 and n2 (both 10.1.0.0/16); the host names."""
    names = [f"h{i}" for i in range(hosts)]
    for i, name in enumerate(names):
        goal.register_host(name, f"192.0.2.{i + 1}")
    goal.create_network("n1", 5001, "10.1.0.0/16")
    goal.create_network("n2", 5002, "10.1.0.0/16")
    return names


def expected(goal: GoalStore, host: str) -> tuple[set[str], dict[str, dict[str, Neighbour]]]:
    """The port ids and, per network, the neighbour table ``host`` must hold."""
    prefix = messages.host_prefix(host)
    snapshot = messages.for_me(goal.host_snapshot(host).data, prefix)
    assert snapshot is not None
    ports = {entry[0] for entry in snapshot["ports"]}
    tables: dict[str, dict[str, Neighbour]] = {}
    for network_id in {entry[1] for entry in snapshot["ports"]}:
        table: dict[str, Neighbour] = {}
        for page in goal.network_snapshot(network_id, host):
            body = messages.for_me(page.data, prefix)
            assert body is not None
            table.update(messages.neighbours(body["up"]))
        tables[network_id] = table
    return ports, tables


def actual(agent: Agent) -> tuple[set[str], dict[str, dict[str, Neighbour]]]:
    dataplane = agent.dataplane
    return set(dataplane.ports()), {n: dict(dataplane.neighbours(n)) for n in dataplane.networks()}


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)
