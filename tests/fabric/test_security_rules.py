"""Security-group rules enforced by the Linux dataplane (nftables in the host namespace): a
secured port admits only what its rules allow, statefully, and sends only from its own
addresses; an unsecured port is open; a restarted dataplane reads the rules back and
rewrites nothing; removing ports leaves no chain. Needs root (skips otherwise) and ``nft``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest

from cascade.fabric.dataplane.base import LocalPort, Neighbour
from cascade.fabric.dataplane.linux import LinuxDataplane
from tests.fabric.netns import Host, ip, ping, run_in
from tests.fabric.test_linux_dataplane import NET, A, B, port, two_hosts

EGRESS_ANY: Mapping[str, object] = {"direction": "egress", "protocol": "any"}
INGRESS_ICMP: Mapping[str, object] = {"direction": "ingress", "protocol": "icmp"}
INGRESS_TCP: Mapping[str, object] = {
    "direction": "ingress",
    "protocol": "tcp",
    "port_min": 8000,
    "port_max": 8001,
    "remote_ip_prefix": "10.77.0.0/24",
}

# Accept connections on every port in argv; say "ready" once listening.
LISTEN_SCRIPT = """
import selectors, socket, sys
selector = selectors.DefaultSelector()
for number in sys.argv[1:]:
    server = socket.create_server(("0.0.0.0", int(number)))
    selector.register(server, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in selector.select():
        key.fileobj.accept()[0].close()
"""
CONNECT_SCRIPT = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 2)"


def reaches(vm_netns: str, address: str) -> bool:
    """A ping answered, of up to three (the machine may be loaded); a blocked one is not."""
    return any(ping(vm_netns, address) for _ in range(3))


def secured(local: LocalPort, *rules: Mapping[str, object]) -> LocalPort:
    return replace(local, security_rules=rules, port_security=True)


def ruleset(host: Host) -> list[dict[str, Any]]:
    """The namespace's nftables objects (tables, chains, rules...), read from the kernel."""
    listed = json.loads(run_in(host.netns, "nft", "-j", "list", "ruleset"))["nftables"]
    return [item for item in listed if "metainfo" not in item]


def chains(host: Host) -> set[str]:
    return {item["chain"]["name"] for item in ruleset(host) if "chain" in item}


@contextmanager
def listening(vm_netns: str, *numbers: int) -> Iterator[None]:
    """A TCP listener inside the VM namespace on each port number."""
    command = ["ip", "netns", "exec", vm_netns, sys.executable, "-c", LISTEN_SCRIPT]
    server = subprocess.Popen([*command, *map(str, numbers)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        yield
    finally:
        server.kill()
        server.wait(timeout=30)


def connects(vm_netns: str, address: str, number: int) -> bool:
    command = ["ip", "netns", "exec", vm_netns, sys.executable, "-c", CONNECT_SCRIPT]
    done = subprocess.run([*command, address, str(number)], capture_output=True, timeout=30)
    return done.returncode == 0


@pytest.mark.timeout(120)
def test_a_secured_port_admits_only_what_its_rules_allow() -> None:
    with two_hosts() as (_, planes):
        vm_a, vm_b = planes[0].vm_namespace("port-a"), planes[1].vm_namespace("port-b")
        planes[0].set_port(replace(A, security_rules=(EGRESS_ANY,)))  # rules, unsecured
        planes[1].set_port(secured(B, EGRESS_ANY))

        assert not ping(vm_a, "10.77.0.2")
        assert reaches(vm_b, "10.77.0.1")  # egress admitted, its replies are established

        planes[1].set_port(secured(B, EGRESS_ANY, INGRESS_ICMP))
        assert reaches(vm_a, "10.77.0.2")
        planes[1].set_port(secured(B, EGRESS_ANY))
        assert not ping(vm_a, "10.77.0.2")

        planes[1].set_port(secured(B, EGRESS_ANY, INGRESS_TCP))
        with listening(vm_b, 7999, 8000, 8001, 8002):
            assert connects(vm_a, "10.77.0.2", 8000)
            assert connects(vm_a, "10.77.0.2", 8001)
            assert not connects(vm_a, "10.77.0.2", 7999)
            assert not connects(vm_a, "10.77.0.2", 8002)


@pytest.mark.timeout(120)
def test_a_secured_vm_sends_only_from_its_own_address() -> None:
    with two_hosts() as (hosts, planes):
        vm_a, vm_b = planes[0].vm_namespace("port-a"), planes[1].vm_namespace("port-b")
        planes[1].set_port(secured(B, EGRESS_ANY, INGRESS_ICMP))
        # Host 0 knows the spoofed address at B's MAC, so only the filter can stop B.
        spoofed = Neighbour(B.mac, "10.77.0.12", hosts[1].vtep)
        planes[0].update_neighbours(NET, {"spoofed": spoofed}, [])
        assert reaches(vm_b, "10.77.0.1")

        ip("addr", "del", "10.77.0.2/24", "dev", "eth0", netns=vm_b)
        ip("addr", "add", "10.77.0.12/24", "dev", "eth0", netns=vm_b)
        assert not ping(vm_b, "10.77.0.1")

        planes[1].set_port(secured(B, EGRESS_ANY, INGRESS_ICMP))  # puts its address back
        assert reaches(vm_b, "10.77.0.1")
        assert reaches(vm_a, "10.77.0.2")


@pytest.mark.timeout(120)
def test_a_restarted_dataplane_reads_the_rules_back_and_rewrites_nothing() -> None:
    with two_hosts() as (hosts, planes):
        want = secured(B, EGRESS_ANY, INGRESS_TCP, INGRESS_ICMP)
        planes[1].set_port(want)
        before = ruleset(hosts[1])

        fresh = LinuxDataplane(hosts[1].netns, hosts[1].vtep)
        try:
            assert fresh.ports() == {"port-b": want}
            fresh.set_port(want)  # a reconcile: what is in force is kept, not rewritten
            assert ruleset(hosts[1]) == before
            assert reaches(planes[0].vm_namespace("port-a"), "10.77.0.2")
        finally:
            fresh.close()


@pytest.mark.timeout(120)
def test_removing_secured_ports_leaves_no_chains() -> None:
    with two_hosts() as (hosts, planes):
        other = secured(port("port-c", "02:00:00:00:00:03", "10.77.0.3/24"), INGRESS_ICMP)
        planes[1].set_port(secured(B, EGRESS_ANY))
        planes[1].set_port(other)
        left = {name for name in chains(hosts[1]) if planes[1]._host_ifname("port-c") in name}
        assert len(left) == 4

        planes[1].remove_port("port-c")
        assert not left & chains(hosts[1])
        assert planes[1].ports()["port-b"] == secured(B, EGRESS_ANY)

        planes[1].set_port(B)  # port security off: its chains go, and the tables with them
        assert ruleset(hosts[1]) == []
        assert planes[1].ports()["port-b"] == B
        assert reaches(planes[0].vm_namespace("port-a"), "10.77.0.2")

        planes[1].set_port(secured(B, EGRESS_ANY))
        planes[1].set_port(other)
        assert chains(hosts[1])
        planes[1].remove_network(NET)
        assert ruleset(hosts[1]) == []
