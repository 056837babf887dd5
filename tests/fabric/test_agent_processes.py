"""Real ``cascade agent`` processes on hosts made of network namespaces, driven over NATS by
a control plane in the test (goal store on SQLite, controller over 127.0.0.1:4222): VMs on
two hosts ping each other over VXLAN, removed ports leave no kernel state behind, and an
agent SIGKILLed while changes went by resyncs to exactly the goal after a restart.
Needs root and NATS (skips otherwise; fails when CI=true)."""

from __future__ import annotations

import asyncio
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from cascade.fabric.controller import FabricController
from cascade.fabric.dataplane.base import Neighbour
from cascade.fabric.dataplane.linux import LinuxDataplane
from cascade.fabric.goal import GoalChange, GoalStore, PortSpec
from cascade.fabric.transports.nats import NatsTransport
from tests.conftest import require_service
from tests.fabric.fleet_helpers import expected, goal_store
from tests.fabric.netns import Host, ip, namespaces, ping, require_netns, run_in, underlay

pytestmark = pytest.mark.nats

NATS_URL = "nats://127.0.0.1:4222"
ZERO_MAC = "00:00:00:00:00:00"
CONVERGE = 30.0


class Agents:
    """One ``cascade agent`` process per host, logging to files under ``tmp_path``."""

    def __init__(self, tmp_path: Path, names: list[str], hosts: list[Host]) -> None:
        self.tmp_path = tmp_path
        self.names = names
        self.hosts = hosts
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.logs: list[Path] = []
        self.started = 0

    def start(self, i: int) -> subprocess.Popen[bytes]:
        host = self.hosts[i]
        log = self.tmp_path / f"agent-{i}-{self.started}.log"
        self.started += 1
        self.logs.append(log)
        command = [sys.executable, "-m", "cascade", "agent", "--host", self.names[i]]
        command += ["--vtep", host.vtep, "--dataplane", "linux", "--netns", host.netns]
        command += ["--nats", NATS_URL]
        with log.open("wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self.procs[i] = proc
        return proc

    def check_alive(self) -> None:
        for i, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"agent {i} exited with {proc.returncode}:\n{self.output()}")

    def output(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')}" for log in self.logs)


def stop(
    proc: subprocess.Popen[bytes], signum: int = signal.SIGTERM, grace: float = 5.0
) -> tuple[int, float]:
    """Send ``signum``, SIGKILL after ``grace`` seconds; (exit status, seconds to exit)."""
    started = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(signum)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode, time.monotonic() - started


@contextmanager
def agent_processes(tmp_path: Path, names: list[str], hosts: list[Host]) -> Iterator[Agents]:
    agents = Agents(tmp_path, names, hosts)
    try:
        yield agents
    finally:
        for proc in agents.procs.values():
            stop(proc)
        print(agents.output())  # shown by pytest when the test fails


@asynccontextmanager
async def control_plane(goal: GoalStore, suffix: str) -> AsyncIterator[FabricController]:
    """A started controller on NATS for the goal store; closed on exit."""
    transport = await NatsTransport.connect(NATS_URL, name=f"cascade-test-{suffix}")
    controller = FabricController(goal, transport, flush_interval=0.02, nudge_after=0.5)
    try:
        await controller.start()
        yield controller
    finally:
        await controller.close()
        await transport.close()


def fresh_fabric(count: int) -> tuple[str, list[str]]:
    """A random suffix and host names, so concurrent runs on one NATS server never mix."""
    suffix = secrets.token_hex(4)
    return suffix, [f"h{i}-{suffix}" for i in range(count)]


async def until_ready(goal: GoalStore, agents: Agents, names: list[str]) -> None:
    """Until every agent fetched its snapshot and acknowledged it (and none died)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONVERGE
    while True:
        agents.check_alive()
        acked = {h["name"] for h in goal.tracking.hosts() if h["acked_at"] is not None}
        if acked >= set(names):
            return
        assert loop.time() < deadline, f"agents never acknowledged:\n{agents.output()}"
        await asyncio.sleep(0.1)


async def converged(controller: FabricController, change: GoalChange, agents: Agents) -> None:
    left = await controller.wait(change, CONVERGE)
    assert left == 0, f"{left} hosts never applied {change}:\n{agents.output()}"


async def pings(vm: str, address: str) -> bool:
    """A ping from ``vm`` answered (three tries: the machine may be loaded)."""
    for _ in range(3):
        if await asyncio.to_thread(ping, vm, address):
            return True
    return False


def kernel_fdb(host: Host, vni: int) -> set[tuple[str, str]]:
    """(MAC, destination VTEP) of every FDB entry with a ``dst`` on ``vx{vni}``."""
    entries = set()
    for line in run_in(host.netns, "bridge", "fdb", "show", "dev", f"vx{vni}").splitlines():
        words = line.split()
        if "dst" in words:
            entries.add((words[0], words[words.index("dst") + 1]))
    return entries


def kernel_neigh(host: Host, vni: int) -> set[tuple[str, str]]:
    """(IP, MAC) of every neighbour entry on ``vx{vni}``."""
    entries = set()
    for line in ip("neigh", "show", "dev", f"vx{vni}", netns=host.netns).splitlines():
        words = line.split()
        if "lladdr" in words:
            entries.add((words[0], words[words.index("lladdr") + 1]))
    return entries


def remote(table: dict[str, Neighbour], host: Host) -> list[Neighbour]:
    return [n for n in table.values() if n.vtep != host.vtep]


def assert_exactly_the_goal(
    goal: GoalStore, name: str, host: Host, vnis: dict[str, int], specs: dict[str, PortSpec]
) -> None:
    """A fresh dataplane object and the kernel show exactly ``name``'s goal state."""
    ports, tables = expected(goal, name)
    plane = LinuxDataplane(host.netns, host.vtep)
    try:
        found = plane.ports()
        assert set(found) == ports
        for port_id, port in found.items():
            spec = specs[port_id]
            assert (port.network_id, port.mac, port.ip.split("/")[0]) == (
                spec.network_id,
                spec.mac,
                spec.ip,
            )
        assert plane.networks() == {n: vnis[n] for n in tables}
        for network_id, table in tables.items():
            others = remote(table, host)
            assert dict(plane.neighbours(network_id)) == {f"mac:{n.mac}": n for n in others}
            vni = vnis[network_id]
            fdb = {(n.mac, n.vtep) for n in others} | {(ZERO_MAC, n.vtep) for n in others}
            assert kernel_fdb(host, vni) == fdb
            assert kernel_neigh(host, vni) == {(n.ip, n.mac) for n in others}
    finally:
        plane.close()


@pytest.mark.timeout(120)
def test_vms_ping_over_vxlan_and_removed_ports_disappear(tmp_path: Path) -> None:
    require_netns()
    require_service("NATS", 4222)
    suffix, names = fresh_fabric(2)
    network, vni = f"net-{suffix}", random.randint(1000, 9000)
    a = PortSpec(f"a-{suffix}", network, names[0], "02:00:00:00:0a:01", "10.88.0.1")
    b = PortSpec(f"b-{suffix}", network, names[1], "02:00:00:00:0a:02", "10.88.0.2")
    db, goal = goal_store(tmp_path)

    async def run(hosts: list[Host], agents: Agents) -> None:
        async with control_plane(goal, suffix) as controller:
            for i in range(2):
                agents.start(i)
            await until_ready(goal, agents, names)

            changes = [goal.add_port(a), goal.add_port(b)]
            for change in changes:
                await controller.publish(change)
            for change in changes:
                await converged(controller, change, agents)

            planes = [LinuxDataplane(h.netns, h.vtep) for h in hosts]
            for plane in planes:
                plane.close()  # only its names are needed
            vm_a, vm_b = planes[0].vm_namespace(a.id), planes[1].vm_namespace(b.id)
            assert (b.mac, hosts[1].vtep) in kernel_fdb(hosts[0], vni)
            assert (b.ip, b.mac) in kernel_neigh(hosts[0], vni)
            assert await pings(vm_a, b.ip)
            assert await pings(vm_b, a.ip)

            removal = goal.remove_port(b.id)
            await controller.publish(removal)
            await converged(controller, removal, agents)

            fdb, neigh = kernel_fdb(hosts[0], vni), kernel_neigh(hosts[0], vni)
            assert not [entry for entry in fdb if entry[0] == b.mac], fdb
            assert (ZERO_MAC, hosts[1].vtep) not in fdb  # no remote neighbour left there
            assert not [entry for entry in neigh if b.mac in entry or b.ip in entry], neigh
            assert vm_b not in namespaces()
            assert vm_a in namespaces()
            host1 = LinuxDataplane(hosts[1].netns, hosts[1].vtep)
            try:
                assert host1.ports() == {}
                assert host1.networks() == {}  # its last port went: it left the network
            finally:
                host1.close()
            agents.check_alive()
            for proc in agents.procs.values():
                assert stop(proc)[0] == 0  # a SIGTERMed agent exits cleanly

    try:
        goal.register_host(names[0], "10.213.0.1")
        goal.register_host(names[1], "10.213.0.2")
        goal.create_network(network, vni, "10.88.0.0/24")
        with underlay(2) as hosts, agent_processes(tmp_path, names, hosts) as agents:
            assert [h.vtep for h in hosts] == ["10.213.0.1", "10.213.0.2"]
            asyncio.run(run(hosts, agents))
    finally:
        db.dispose()


@pytest.mark.timeout(120)
def test_sigkilled_agent_resyncs_to_exactly_the_goal(tmp_path: Path) -> None:
    require_netns()
    require_service("NATS", 4222)
    suffix, names = fresh_fabric(2)
    vni = random.randint(1000, 8999)
    net, other = f"net-{suffix}", f"other-{suffix}"
    vnis = {net: vni, other: vni + 1}

    def spec(port_id: str, network: str, host: int, last: int) -> PortSpec:
        prefix = "10.88.0" if network == net else "10.89.0"
        mac = f"02:00:00:00:{0x0B if network == net else 0x0C:02x}:{last:02x}"
        return PortSpec(f"{port_id}-{suffix}", network, names[host], mac, f"{prefix}.{last}")

    a0, a1, a2 = spec("a0", net, 0, 1), spec("a1", net, 0, 2), spec("a2", net, 0, 3)
    b0, b1, b2 = spec("b0", net, 1, 11), spec("b1", net, 1, 12), spec("b2", net, 1, 13)
    c0 = spec("c0", other, 1, 11)  # host 1's only port on the other network
    specs = {p.id: p for p in (a0, a1, a2, b0, b1, b2, c0)}
    db, goal = goal_store(tmp_path)

    async def run(hosts: list[Host], agents: Agents) -> None:
        async with control_plane(goal, suffix) as controller:
            for i in range(2):
                agents.start(i)
            await until_ready(goal, agents, names)

            changes = [goal.add_port(p) for p in (a0, a1, b0, b1, c0)]
            for change in changes:
                await controller.publish(change)
            for change in changes:
                await converged(controller, change, agents)
            for i in range(2):
                assert_exactly_the_goal(goal, names[i], hosts[i], vnis, specs)

            killed = agents.procs[1]
            killed.kill()
            killed.wait()
            assert killed.returncode == -signal.SIGKILL
            missed = [
                goal.remove_port(a1.id),
                goal.add_port(a2),
                goal.remove_port(b1.id),
                goal.add_port(b2),
                goal.remove_port(c0.id),
            ]
            for change in missed:
                await controller.publish(change)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + CONVERGE
            while goal.tracking.lagging([names[0]]):  # host 0 follows
                assert loop.time() < deadline, f"host 0 lags:\n{agents.output()}"
                await asyncio.sleep(0.1)
            # host 1 still holds what it had when it died
            assert (a1.mac, hosts[0].vtep) in kernel_fdb(hosts[1], vni)
            assert (a2.mac, hosts[0].vtep) not in kernel_fdb(hosts[1], vni)
            host1 = LinuxDataplane(hosts[1].netns, hosts[1].vtep)
            try:
                assert set(host1.ports()) == {b0.id, b1.id, c0.id}
            finally:
                host1.close()

            agents.start(1)
            for change in missed:
                await converged(controller, change, agents)
            deadline = loop.time() + CONVERGE
            while lagging := goal.tracking.lagging():
                assert loop.time() < deadline, f"{lagging} still lag:\n{agents.output()}"
                await asyncio.sleep(0.1)
            agents.check_alive()

            for i in range(2):
                assert_exactly_the_goal(goal, names[i], hosts[i], vnis, specs)
            assert expected(goal, names[1])[0] == {b0.id, b2.id}
            fdb1 = kernel_fdb(hosts[1], vni)
            assert (a1.mac, hosts[0].vtep) not in fdb1  # the port removed while it was away
            assert (a2.mac, hosts[0].vtep) in fdb1  # the port added while it was away
            plane0 = LinuxDataplane(hosts[0].netns, hosts[0].vtep)
            plane1 = LinuxDataplane(hosts[1].netns, hosts[1].vtep)
            try:
                gone = {plane1.vm_namespace(p.id) for p in (b1, c0)}
                gone.add(plane0.vm_namespace(a1.id))
                assert not gone & namespaces()
                assert await pings(plane0.vm_namespace(a0.id), b2.ip)
                assert await pings(plane1.vm_namespace(b2.id), a2.ip)
            finally:
                plane0.close()
                plane1.close()
            for proc in agents.procs.values():
                assert stop(proc)[0] == 0

    try:
        goal.register_host(names[0], "10.213.0.1")
        goal.register_host(names[1], "10.213.0.2")
        goal.create_network(net, vni, "10.88.0.0/24")
        goal.create_network(other, vni + 1, "10.89.0.0/24")
        with underlay(2) as hosts, agent_processes(tmp_path, names, hosts) as agents:
            assert [h.vtep for h in hosts] == ["10.213.0.1", "10.213.0.2"]
            asyncio.run(run(hosts, agents))
    finally:
        db.dispose()


@pytest.mark.timeout(120)
def test_agent_creates_its_namespace_logs_changes_and_removes_only_what_it_made(
    tmp_path: Path,
) -> None:
    require_netns()
    require_service("NATS", 4222)
    suffix, names = fresh_fabric(2)
    network, vni = f"net-{suffix}", random.randint(1000, 9000)
    fresh = Host(f"ch-new-{suffix}", "10.213.0.9")  # no such namespace yet: the agent makes it
    a = PortSpec(f"a-{suffix}", network, names[0], "02:00:00:00:0d:01", "10.88.0.1")
    b = PortSpec(f"b-{suffix}", network, names[1], "02:00:00:00:0d:02", "10.88.0.2")
    db, goal = goal_store(tmp_path)

    async def run(agents: Agents) -> None:
        async with control_plane(goal, suffix) as controller:
            for i in range(2):
                agents.start(i)
            await until_ready(goal, agents, names)
            for change in [goal.add_port(a), goal.add_port(b)]:
                await controller.publish(change)
                await converged(controller, change, agents)
            killed = agents.procs[1]  # killed: it cannot remove its namespace...
            killed.kill()
            killed.wait()
            assert fresh.netns in namespaces()
            agents.start(1)  # ...so the next agent on it, finding the mark, will
            restarted = agents.logs[-1]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + CONVERGE
            while "host snapshot" not in restarted.read_text(errors="replace"):
                agents.check_alive()
                assert loop.time() < deadline, agents.output()
                await asyncio.sleep(0.1)

    try:
        goal.register_host(names[0], "10.213.0.1")
        goal.register_host(names[1], fresh.vtep)
        goal.create_network(network, vni, "10.88.0.0/24")
        with underlay(1) as hosts, agent_processes(tmp_path, names, [hosts[0], fresh]) as agents:
            assert fresh.netns not in namespaces()
            asyncio.run(run(agents))
            plane = LinuxDataplane(fresh.netns, fresh.vtep)
            try:
                assert set(plane.ports()) == {b.id}
                vm_b = plane.vm_namespace(b.id)
            finally:
                plane.close()
            vm_a = LinuxDataplane(hosts[0].netns, hosts[0].vtep)
            try:
                vm_a_name = vm_a.vm_namespace(a.id)
            finally:
                vm_a.close()
            assert {fresh.netns, vm_b, vm_a_name} <= namespaces()
            for i in range(2):
                status, seconds = stop(agents.procs[i], signal.SIGINT, grace=10)
                assert status == 0, agents.output()
                assert seconds < 5, f"agent {i} took {seconds:.1f} s to stop"
            output = agents.output()
            assert "Traceback" not in output, output
            created = f"network namespace {fresh.netns} was created by an agent"
            assert output.count(created) == 2  # the first agent and the one after the kill
            assert f"port {b.id} set on network {network}" in output
            assert f"port {a.id} set on network {network}" in output
            assert f"joined network {network}" in output
            left = namespaces()
            assert fresh.netns not in left  # it created it: removed, with its VM namespace
            assert vm_b not in left
            assert hosts[0].netns in left  # it was there before: kept, as programmed
            assert vm_a_name in left
    finally:  # underlay's exit removed every VM namespace that appeared; this one is ours
        if fresh.netns in namespaces():
            subprocess.run(["ip", "netns", "del", fresh.netns], capture_output=True, check=False)
        db.dispose()
