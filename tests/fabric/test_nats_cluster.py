"""The fabric on a 3-node NATS cluster (nats-server routes, own loopback ports, no
JetStream) while changes stream: SIGKILL the node the controller is connected to, or the
node an agent is connected to, and every agent still converges exactly (its applied
revisions equal the goal's and its dataplane holds exactly the goal state); several
controller processes share the acknowledgements and resync requests as one queue group,
one is SIGKILLed, and the others carry on. Agents run in the test process (memory
dataplanes, each on its own connection); the goal store is one SQLite file.

Run as ``python -m tests.fabric.test_nats_cluster DB_URL SERVERS`` this module is one
controller process, as an API process runs it, until SIGTERM."""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from cascade.db import Database
from cascade.fabric.agent import Agent
from cascade.fabric.controller import FabricController, start_controller, stop_controller
from cascade.fabric.dataplane.memory import MemoryDataplane
from cascade.fabric.goal import GoalChange, GoalStore, PortSpec
from cascade.fabric.transports.base import Message
from cascade.fabric.transports.nats import NatsTransport
from cascade.fabric.transports.nats_cluster import NatsCluster, nats_cluster
from tests.conftest import IN_CI
from tests.fabric.fleet_helpers import actual, expected, goal_store, setup_goal

HOSTS = 6
STREAMED = 20  # changes streamed one every STREAM_GAP seconds before a node dies
STREAM_GAP = 0.03
BURST = 8  # changes published right after it died
CONVERGE = 60.0


def require_nats_server() -> None:
    if shutil.which("nats-server", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        if IN_CI:
            pytest.fail("nats-server is not installed (CI=true requires it)")
        pytest.skip("nats-server is not installed")


@pytest.fixture
def cluster() -> Iterator[NatsCluster]:
    require_nats_server()
    with nats_cluster(3) as started:
        yield started


def test_a_port_taken_before_its_node_binds_it_starts_the_cluster_on_new_ports(
    tmp_path: Path,
) -> None:
    require_nats_server()
    with socket.socket() as squatter:  # another process's listener on a port chosen as free
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        racing = NatsCluster(2, tmp_path)
        racing.nodes[1].port = taken
        try:
            racing.start()
            assert taken not in {node.port for node in racing.nodes}
            assert all(node.alive for node in racing.nodes)
            assert racing.varz(0, "routez")["num_routes"] >= 1
        finally:
            racing.stop()


def pinned(urls: list[str], first: int) -> list[str]:
    """The cluster's URLs starting at node ``first``: the node a client connects to."""
    return urls[first:] + urls[:first]


async def connect(cluster: NatsCluster, node: int, name: str) -> NatsTransport:
    return await NatsTransport.connect(pinned(cluster.urls, node), name=name, randomize=False)


@asynccontextmanager
async def agents_on(
    cluster: NatsCluster, names: list[str], nodes: Callable[[int], int]
) -> AsyncIterator[list[Agent]]:
    """A started agent per host, host ``i`` connected to node ``nodes(i)``."""
    agents: list[Agent] = []
    try:
        for i, name in enumerate(names):
            transport = await connect(cluster, nodes(i), f"agent-{name}")
            agent = Agent(name, transport, MemoryDataplane(f"192.0.2.{i + 1}"), resync_after=0.5)
            agents.append(agent)
            await agent.start()
        yield agents
    finally:
        for agent in agents:
            await agent.stop()
            await agent.transport.close()


class Stream:
    """Random port changes over hosts and networks n1, n2, each published as it commits."""

    def __init__(self, goal: GoalStore, names: list[str], seed: int) -> None:
        self.goal = goal
        self.names = names
        self.rng = random.Random(seed)
        self.ports: list[str] = []
        self.made = 0

    def change(self) -> GoalChange:
        if self.ports and self.rng.random() < 0.3:
            return self.goal.remove_port(self.ports.pop(self.rng.randrange(len(self.ports))))
        self.made += 1
        index, host = self.made, self.rng.choice(self.names)
        network = self.rng.choice(["n1", "n2"])
        mac = f"02:00:00:00:{index // 256:02x}:{index % 256:02x}"
        spec = PortSpec(f"p{index}", network, host, mac, f"10.1.{index // 250}.{index % 250 + 1}")
        self.ports.append(spec.id)
        return self.goal.add_port(spec)

    async def run(self, publisher: FabricController, count: int) -> None:
        for _ in range(count):
            await publisher.publish(await asyncio.to_thread(self.change))
            await asyncio.sleep(STREAM_GAP)

    async def across(self, publisher: FabricController, kill: Callable[[], None]) -> None:
        """Commit ``BURST`` changes, ``kill`` a node, then publish them at once and nothing
        after: they leave while clients are failing over, so no later message reveals a
        lost one and only the resync on reconnecting (or a nudge) can repair it."""
        burst = [await asyncio.to_thread(self.change) for _ in range(BURST)]
        await asyncio.to_thread(kill)
        for change in burst:
            await publisher.publish(change)


def mismatches(goal: GoalStore, agents: list[Agent]) -> list[str]:
    """The hosts whose agent does not hold exactly its goal: revisions as the goal store
    has them, acknowledged, and the dataplane's ports and neighbour tables."""
    status = {h["name"]: h for h in goal.tracking.hosts()}
    wrong = []
    for agent in agents:
        host = status[agent.host]
        ports, tables = expected(goal, agent.host)
        if (
            not host["converged"]
            or agent.revision != host["revision"]
            or actual(agent) != (ports, tables)
        ):
            wrong.append(agent.host)
    return wrong


async def converged_exactly(goal: GoalStore, agents: list[Agent]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONVERGE
    while wrong := await asyncio.to_thread(mismatches, goal, agents):
        assert loop.time() < deadline, f"{wrong} never converged exactly"
        await asyncio.sleep(0.2)


def test_transport_fails_over_and_resyncs(cluster: NatsCluster) -> None:
    """A subscription outlives its node: the connection moves to another node, runs its
    reconnect handlers, and messages published anywhere reach it again."""

    async def run() -> None:
        sender = await connect(cluster, 1, "sender")
        receiver = await connect(cluster, 0, "receiver")
        got: list[bytes] = []
        back = asyncio.Event()

        async def resync() -> None:
            back.set()

        async def collect(message: Message) -> None:
            got.append(message.data)

        try:
            receiver.on_reconnect(resync)
            await receiver.subscribe("cluster.test", collect)
            await receiver.flush()
            await asyncio.to_thread(cluster.kill, 0)
            await asyncio.wait_for(back.wait(), CONVERGE)
            assert cluster.index_of(receiver.connected_url) in (1, 2)
            await receiver.flush()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + CONVERGE
            while not got:  # the subscription's interest reaches node 1 over a route
                assert loop.time() < deadline, "nothing arrived after failing over"
                await sender.publish("cluster.test", b"after")
                await asyncio.sleep(0.05)
            assert set(got) == {b"after"}
        finally:
            await receiver.close()
            await sender.close()

    asyncio.run(run())


@pytest.mark.timeout(120)
@pytest.mark.parametrize("victim", ["controller", "agent"])
def test_agents_converge_exactly_when_a_node_dies_mid_stream(
    cluster: NatsCluster, tmp_path: Path, victim: str
) -> None:
    db, goal = goal_store(tmp_path)
    names = setup_goal(goal, HOSTS)

    async def run() -> None:
        transport = await connect(cluster, 0, "controller")
        controller = FabricController(goal, transport, flush_interval=0.02, nudge_after=1.0)
        await controller.start()
        try:
            async with agents_on(cluster, names, lambda i: i % 3) as agents:
                await converged_exactly(goal, agents)
                stream = Stream(goal, names, seed=19)
                await stream.run(controller, STREAMED)
                doomed = transport if victim == "controller" else agents[2].transport
                node = cluster.index_of(doomed.connected_url)
                assert node == (0 if victim == "controller" else 2)
                await stream.across(controller, lambda: cluster.kill(node))
                await converged_exactly(goal, agents)
                survivor = cluster.index_of(doomed.connected_url)
                assert survivor != node  # it failed over to another node
                assert len(stream.ports) > HOSTS  # the stream left ports on most hosts
        finally:
            await controller.close()
            await transport.close()

    try:
        asyncio.run(run())
    finally:
        db.dispose()


@asynccontextmanager
async def controller_processes(
    db_url: str, cluster: NatsCluster, count: int, tmp_path: Path
) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    """``count`` controller processes on the goal store, each first on node ``i % 3``."""
    procs: list[subprocess.Popen[bytes]] = []
    logs = [tmp_path / f"controller-{i}.log" for i in range(count)]
    try:
        for i, log in enumerate(logs):
            servers = ",".join(pinned(cluster.urls, i % 3))
            command = [sys.executable, "-m", "tests.fabric.test_nats_cluster", db_url, servers]
            with log.open("wb") as out:
                procs.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONVERGE
        while not all("ready" in log.read_text() for log in logs):
            assert all(p.poll() is None for p in procs), "\n".join(p.read_text() for p in logs)
            assert loop.time() < deadline, "controllers never started"
            await asyncio.sleep(0.1)
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        print("\n".join(f"--- {log.name}\n{log.read_text()}" for log in logs))


@pytest.mark.timeout(120)
def test_controllers_share_the_work_and_survive_one_sigkilled(
    cluster: NatsCluster, tmp_path: Path
) -> None:
    db, goal = goal_store(tmp_path)
    names = setup_goal(goal, HOSTS + 1)
    late = names.pop()  # its agent starts once a controller is dead
    db_url = f"sqlite:///{tmp_path / 'fabric.db'}"

    async def run() -> None:
        transport = await connect(cluster, 1, "publisher")
        publisher = FabricController(goal, transport)  # publishes only: not in the group
        try:
            async with (
                controller_processes(db_url, cluster, 3, tmp_path) as procs,
                agents_on(cluster, names, lambda i: i % 3) as agents,
            ):
                await converged_exactly(goal, agents)  # snapshots answered by processes
                stream = Stream(goal, [*names, late], seed=7)
                await stream.run(publisher, STREAMED)
                procs[0].send_signal(signal.SIGKILL)
                await stream.run(publisher, STREAMED)
                async with agents_on(cluster, [late], lambda i: 0) as newcomer:
                    await converged_exactly(goal, agents + newcomer)
                assert procs[0].wait(10) == -signal.SIGKILL
                assert all(p.poll() is None for p in procs[1:])
        finally:
            await transport.close()

    try:
        asyncio.run(run())
    finally:
        db.dispose()


async def _serve_controller(db_url: str, servers: str) -> None:
    """One controller on the goal store at ``db_url`` until SIGTERM, as an API process."""
    db = Database(db_url)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    controller = await start_controller(GoalStore(db), servers)
    print("ready", flush=True)
    try:
        await stop.wait()
    finally:
        await stop_controller(controller)
        db.dispose()


if __name__ == "__main__":
    asyncio.run(_serve_controller(sys.argv[1], sys.argv[2]))
