"""A simulated fleet: N in-memory agents and a controller in one process.

The scenario the benchmark and ``cascade fleet-sim`` run: one network already has N ports
spread over N hosts, all converged; one new port joins it on a host that had no port there
yet. Every one of the N hosts must learn the new neighbour (one multicast message) and the
new host must receive the whole table (a snapshot, in pages). The figure is the time from
the change until the controller has recorded every affected host's acknowledgement.

To build a fleet of a million hosts in reasonable time the starting state is loaded in
bulk: rows go into the database in one transaction, and every agent starts from the same
in-memory network table (a persistent map, shared until an agent changes it) instead of
asking for a million snapshots. Everything measured after that goes through the real
path: goal store, controller, transport, agents, dataplanes, acknowledgements.

Over NATS the controller has its connection and the agents share one more per server
given: naming a cluster's nodes spreads the agents over them, so what one publishes
crosses the cluster's routes as in a real fleet (where every host has its own connection),
and the figures say what each connection published and received while converging.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import immutables
from sqlalchemy import insert

from cascade.db.models import FabricHost, FabricMembership, FabricNetwork, FabricPort, utcnow
from cascade.fabric.agent import Agent
from cascade.fabric.controller import FabricController
from cascade.fabric.dataplane.base import Neighbour
from cascade.fabric.dataplane.memory import MemoryDataplane
from cascade.fabric.goal import GoalStore, PortSpec, scratch_database
from cascade.fabric.transports.base import Message, Transport
from cascade.fabric.transports.memory import MemoryTransport
from cascade.fabric.transports.nats import NatsTransport

NETWORK = "fleet"
VNI = 4096
CIDR = "10.0.0.0/8"
PREFIX = 8
GC_THRESHOLDS = (200_000, 50, 1000)
WARM_UP_ROUNDS = 10  # CPython specialises code after a few runs; SQLAlchemy caches SQL


@dataclass(frozen=True)
class JoinFigures:
    hosts: int
    changes: int  # ports joined, one change each
    setup_s: float
    converge_s: float
    messages: int  # published by anyone (control plane and agents) while converging
    bytes: int
    deliveries: int  # messages handed to subscribers (in-process transport only)
    agent_deliveries_per_s: float  # messages agents received for themselves, per second
    control_messages: int  # published by the control plane
    control_bytes: int
    acks: int
    exact: bool  # every host holds exactly the goal table afterwards
    # Over NATS, per connection (the controller's first, then the agents' by server):
    # server, messages and bytes published, messages and bytes delivered, while converging.
    connections: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _address(index: int, base: str) -> str:
    return str(ipaddress.ip_address(base) + index)


def _port(index: int, host: str) -> PortSpec:
    mac = "02:" + ":".join(f"{b:02x}" for b in (index + 1).to_bytes(5, "big"))
    return PortSpec(f"p{index}", NETWORK, host, mac, _address(index + 1, "10.0.0.0"))


def _entry(spec: PortSpec) -> list[Any]:
    return [spec.id, NETWORK, VNI, spec.mac, f"{spec.ip}/{PREFIX}", []]


class Fleet:
    def __init__(
        self,
        data_dir: Path,
        hosts: int,
        transport: Transport | None = None,
        agent_transports: list[Transport] | None = None,
    ) -> None:
        self.db = scratch_database(data_dir / "fleet.db")
        self.goal = GoalStore(self.db)
        self.size = hosts
        self.transport = transport or MemoryTransport()
        self.agent_transports = agent_transports or [self.transport]  # agent i: i % len
        self.controller = FabricController(self.goal, self.transport, nudge_after=5.0)
        self.agents: list[Agent] = []
        self.joined = 0
        self.names = [f"h{i}" for i in range(hosts)]
        self.vteps = [_address(i, "100.64.0.1") for i in range(hosts + 1)]
        self.ports = [_port(i, name) for i, name in enumerate(self.names)]

    async def build(self) -> None:
        """Load the converged starting state and start every agent on it.

        The fleet's objects live as long as the process, so they are moved out of the
        cyclic garbage collector's reach (``gc.freeze``), and collections are made rarer:
        with CPython's defaults a collection runs every 700 new objects and the older
        generations are walked again and again as a million agents' updated tables pile
        up, which measured 6-12 us per neighbour update against 0.8 us without it. An
        agent on a real host holds a few thousand objects and never pays this."""
        gc.disable()
        try:
            await self._build()
        finally:
            gc.collect()
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS)
            gc.enable()

    async def _build(self) -> None:
        hosts = [*zip(self.names, self.vteps, strict=False), ("hnew", self.vteps[-1])]
        await asyncio.to_thread(self._load, hosts)
        shared: immutables.Map[str, Neighbour] = immutables.Map()
        with shared.mutate() as table:
            for spec, vtep in zip(self.ports, self.vteps, strict=False):
                table[spec.id] = Neighbour(spec.mac, spec.ip, vtep)
            shared = table.finish()
        await self.controller.start()
        tables: dict[str, tuple[int, int, Mapping[str, Neighbour]]] = {NETWORK: (1, VNI, shared)}
        buses = self.agent_transports
        for index, (spec, vtep) in enumerate(zip(self.ports, self.vteps, strict=False)):
            agent = Agent(spec.host, buses[index % len(buses)], MemoryDataplane(vtep))
            snapshot = {"t": "hs", "r": 1, "ports": [_entry(spec)]}
            await agent.start(snapshot=snapshot, tables=tables)
            self.agents.append(agent)
        newcomer = Agent("hnew", buses[self.size % len(buses)], MemoryDataplane(self.vteps[-1]))
        await newcomer.start(snapshot={"t": "hs", "r": 1, "ports": []})
        self.agents.append(newcomer)
        await self._interest_known()
        await self._warm_up()
        await self._settle()

    async def _interest_known(self) -> None:
        """Over a NATS cluster, wait until every node knows what the agents subscribed to.

        A node tells the others of its clients' subscriptions over the routes, after the
        fact: a message published elsewhere a moment later finds no interest and is lost
        (the nudge would repair it, seconds later, timing the nudge instead of the fabric).
        Each agent connection subscribes once more, last, and the controller publishes to
        it until it arrives: the routes carry a node's subscriptions in order."""
        for index, bus in enumerate(self.agent_transports):
            if bus is self.transport:
                continue
            arrived = asyncio.Event()

            async def arrive(_message: Message, arrived: asyncio.Event = arrived) -> None:
                arrived.set()

            subject = f"cascade.fleet.probe.{index}"
            probe = await bus.subscribe(subject, arrive)
            while not arrived.is_set():
                await self.transport.publish(subject, b"")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), 0.05)
            await probe.unsubscribe()

    async def _warm_up(self) -> None:
        """Run one port through a network of its own and take it away again, so that what
        is timed next meets a control plane that has been running (SQL statements
        compiled, code paths warm) rather than the first request of a fresh process."""
        self.goal.create_network("warm-up", VNI + 1, "192.168.0.0/24")
        spec = PortSpec("warm-up-port", "warm-up", "hnew", "02:ff:00:00:00:01", "192.168.0.1")
        for _ in range(WARM_UP_ROUNDS):
            for change in (self.goal.add_port(spec), self.goal.remove_port(spec.id)):
                await self.controller.publish(change)
                await self.controller.wait(change, timeout=60)
        self.goal.delete_network("warm-up")

    def _load(self, hosts: list[tuple[str, str]]) -> None:
        """Insert the converged fleet in one transaction: every host, port and membership
        at revision 1, acknowledged."""
        now = utcnow()
        rows = {
            FabricHost: [
                {
                    "name": n,
                    "tunnel_ip": ip,
                    "revision": 1,
                    "applied_revision": 1,
                    "created_at": now,
                }
                for n, ip in hosts
            ],
            FabricNetwork: [
                {"id": NETWORK, "vni": VNI, "cidr": CIDR, "revision": 1, "created_at": now}
            ],
            FabricPort: [
                {
                    "id": p.id,
                    "network_id": NETWORK,
                    "host": p.host,
                    "mac": p.mac,
                    "ip": p.ip,
                    "security_rules": [],
                    "created_at": now,
                }
                for p in self.ports
            ],
            FabricMembership: [
                {"host": p.host, "network_id": NETWORK, "applied_revision": 1} for p in self.ports
            ],
        }
        with self.db.session() as session:
            for model, values in rows.items():
                session.execute(insert(model), values)

    async def _settle(self) -> None:
        if isinstance(self.transport, MemoryTransport):
            await self.transport.drained()
        await self.controller.flush()

    def _buses(self) -> list[Transport]:
        return [self.transport, *(t for t in self.agent_transports if t is not self.transport)]

    def _counters(self) -> tuple[int, int, int]:
        """Messages and bytes published by anyone, and messages delivered, so far."""
        t = self.transport
        if isinstance(t, MemoryTransport):
            return t.published, t.published_bytes, t.deliveries
        traffic = [bus.traffic() for bus in self._buses() if isinstance(bus, NatsTransport)]
        return sum(t[0] for t in traffic), sum(t[1] for t in traffic), sum(t[2] for t in traffic)

    def _traffic(self) -> list[tuple[str, tuple[int, int, int, int]]]:
        """Per NATS connection: its server and what it published and received so far."""
        return [
            (bus.connected_url or "?", bus.traffic())
            for bus in self._buses()
            if isinstance(bus, NatsTransport)
        ]

    async def join(self, count: int = 1, timeout: float = 600.0) -> tuple[float, int]:
        """Add ``count`` ports on the new host, one change each, back to back; return
        (seconds until every host applied the last one, hosts left behind)."""
        started = time.perf_counter()
        for index in range(self.size, self.size + count):
            change = await asyncio.to_thread(self.goal.add_port, _port(index, "hnew"))
            await self.controller.publish(change)
        left = await self.controller.wait(change, timeout)
        self.joined = count
        return time.perf_counter() - started, left

    def exact(self) -> bool:
        """Every agent holds the full table, new ports included, with the right endpoints."""
        newest = [_port(i, "hnew") for i in range(self.size, self.size + self.joined)]
        want = {p.id: Neighbour(p.mac, p.ip, self.vteps[-1]) for p in newest}
        for agent in self.agents:
            table = agent.dataplane.neighbours(NETWORK)
            if len(table) != self.size + len(want):
                return False
            if any(table.get(port_id) != neighbour for port_id, neighbour in want.items()):
                return False
        sample = self.agents[-1].dataplane.neighbours(NETWORK)
        return all(
            sample.get(spec.id) == Neighbour(spec.mac, spec.ip, vtep)
            for spec, vtep in zip(self.ports, self.vteps, strict=False)
        )

    def received(self) -> int:
        return sum(agent.received for agent in self.agents)

    async def close(self) -> None:
        await self.controller.close()
        for bus in self._buses():
            await bus.close()
        self.db.dispose()


def _difference(
    before: list[tuple[str, tuple[int, int, int, int]]],
    after: list[tuple[str, tuple[int, int, int, int]]],
) -> list[dict[str, Any]]:
    keys = ("published", "published_bytes", "delivered", "delivered_bytes")
    return [
        {"server": server, **{k: b - a for k, a, b in zip(keys, old, new, strict=True)}}
        for (_, old), (server, new) in zip(before, after, strict=True)
    ]


async def agent_connections(transport: Transport | None) -> list[Transport] | None:
    """Over NATS, one connection per server the transport was given, for the agents."""
    if not isinstance(transport, NatsTransport):
        return None
    return [
        await NatsTransport.connect(url, name=f"fleet-agents-{i}")
        for i, url in enumerate(transport.servers)
    ]


async def measure_join(
    data_dir: Path, hosts: int, transport: Transport | None = None, changes: int = 1
) -> JoinFigures:
    """Build a fleet of ``hosts`` agents and time ``changes`` ports joining their network."""
    fleet = Fleet(data_dir, hosts, transport, await agent_connections(transport))
    try:
        started = time.perf_counter()
        await fleet.build()
        setup_s = time.perf_counter() - started
        before, traffic_before = fleet._counters(), fleet._traffic()
        control_before = fleet.controller.sent_messages, fleet.controller.sent_bytes
        acks_before, received_before = fleet.controller.acks_received, fleet.received()
        converge_s, left = await fleet.join(changes)
        received = fleet.received() - received_before
        await fleet._settle()
        after, traffic_after = fleet._counters(), fleet._traffic()
        return JoinFigures(
            hosts=hosts,
            changes=changes,
            setup_s=round(setup_s, 3),
            converge_s=round(converge_s, 4) if left == 0 else float("inf"),
            messages=after[0] - before[0],
            bytes=after[1] - before[1],
            deliveries=after[2] - before[2],
            agent_deliveries_per_s=round(received / converge_s, 1),
            control_messages=fleet.controller.sent_messages - control_before[0],
            control_bytes=fleet.controller.sent_bytes - control_before[1],
            acks=fleet.controller.acks_received - acks_before,
            exact=left == 0 and fleet.exact(),
            connections=_difference(traffic_before, traffic_after),
        )
    finally:
        await fleet.close()
