"""The Linux dataplane on hosts made of network namespaces: VMs on two hosts ping each other
over VXLAN, calls are idempotent, a fresh object reads the state back from the kernel and
reconciles it, and removing a network leaves nothing behind. Needs root (skips otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from cascade.fabric.dataplane.base import LocalPort, Neighbour
from cascade.fabric.dataplane.linux import LinuxDataplane
from tests.fabric.netns import Host, ip, namespaces, ping, require_netns, run_in, underlay

NET, VNI = "net-a", 4242
MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"


def port(port_id: str, mac: str, ip_address: str) -> LocalPort:
    return LocalPort(port_id, NET, VNI, mac, ip_address)


A = port("port-a", MAC_A, "10.77.0.1/24")
B = port("port-b", MAC_B, "10.77.0.2/24")


def table(hosts: list[Host]) -> dict[str, Neighbour]:
    return {
        "port-a": Neighbour(MAC_A, "10.77.0.1", hosts[0].vtep),
        "port-b": Neighbour(MAC_B, "10.77.0.2", hosts[1].vtep),
    }


@contextmanager
def two_hosts() -> Iterator[tuple[list[Host], list[LinuxDataplane]]]:
    """Two hosts, network NET on both, port A on host 0 and B on host 1, full tables."""
    require_netns()
    with underlay(2) as hosts, ExitStack() as stack:
        planes = [LinuxDataplane(h.netns, h.vtep) for h in hosts]
        for plane in planes:
            stack.callback(plane.close)
        program(hosts, planes)
        yield hosts, planes


def program(hosts: list[Host], planes: list[LinuxDataplane]) -> None:
    for plane, local in zip(planes, (A, B), strict=True):
        plane.ensure_network(NET, VNI)
        plane.set_port(local)
        plane.update_neighbours(NET, table(hosts), [])


def fdb(host: Host) -> str:
    return run_in(host.netns, "bridge", "fdb", "show", "dev", f"vx{VNI}")


def arp(host: Host) -> str:
    return ip("neigh", "show", "dev", f"vx{VNI}", netns=host.netns)


def pings(planes: list[LinuxDataplane]) -> bool:
    there = ping(planes[0].vm_namespace("port-a"), "10.77.0.2")
    back = ping(planes[1].vm_namespace("port-b"), "10.77.0.1")
    return there and back


@pytest.mark.timeout(60)
def test_vms_on_two_hosts_ping_and_removed_neighbours_disappear() -> None:
    with two_hosts() as (hosts, planes):
        assert "02:00:00:00:00:02 dst 10.213.0.2 self permanent" in fdb(hosts[0])
        assert "00:00:00:00:00:00 dst 10.213.0.2 self permanent" in fdb(hosts[0])
        assert "10.77.0.2 lladdr 02:00:00:00:00:02 PERMANENT" in arp(hosts[0])
        assert MAC_A not in fdb(hosts[0])  # local neighbours need no entries
        assert pings(planes)

        planes[1].remove_port("port-b")
        planes[0].update_neighbours(NET, {}, ["port-b"])

        assert MAC_B not in fdb(hosts[0])
        assert "10.213.0.2" not in fdb(hosts[0])  # the flood entry went with the last MAC
        assert "10.77.0.2" not in arp(hosts[0])
        assert planes[1].vm_namespace("port-b") not in namespaces()
        assert planes[1].ports() == {}
        assert dict(planes[0].neighbours(NET)) == {"port-a": table(hosts)["port-a"]}


@pytest.mark.timeout(60)
def test_replayed_calls_and_a_restarted_agent_reconcile_from_the_kernel() -> None:
    with two_hosts() as (hosts, planes):
        program(hosts, planes)  # the same calls again
        before = (fdb(hosts[0]), arp(hosts[0]))
        program(hosts, planes)
        assert (fdb(hosts[0]), arp(hosts[0])) == before
        assert pings(planes)

        fresh = LinuxDataplane(hosts[0].netns, hosts[0].vtep)
        try:
            assert fresh.networks() == {NET: VNI}
            assert fresh.ports() == {"port-a": A}
            remote = table(hosts)["port-b"]
            assert dict(fresh.neighbours(NET)) == {f"mac:{MAC_B}": remote}
            fresh.update_neighbours(NET, {"port-b": remote}, [])  # a port id replaces "mac:"
            assert dict(fresh.neighbours(NET)) == {"port-b": remote}

            stale = Neighbour("02:00:00:00:00:99", "10.77.0.99", "10.213.0.9")
            planes[0].update_neighbours(NET, {"port-x": stale}, [])
            assert "02:00:00:00:00:99 dst 10.213.0.9" in fdb(hosts[0])
            assert "10.77.0.99" in arp(hosts[0])

            fresh.replace_neighbours(NET, table(hosts))
            assert "02:00:00:00:00:99" not in fdb(hosts[0])
            assert "10.213.0.9" not in fdb(hosts[0])
            assert "10.77.0.99" not in arp(hosts[0])
            assert "02:00:00:00:00:02 dst 10.213.0.2 self permanent" in fdb(hosts[0])
            assert "00:00:00:00:00:00 dst 10.213.0.2 self permanent" in fdb(hosts[0])
            assert "10.77.0.2 lladdr 02:00:00:00:00:02 PERMANENT" in arp(hosts[0])
            assert dict(fresh.neighbours(NET)) == table(hosts)
            assert pings(planes)

            moved = port("port-a", "02:00:00:00:00:11", "10.77.0.11/24")
            fresh.set_port(moved)  # set_port fixes MAC and address in place
            assert fresh.ports() == {"port-a": moved}
        finally:
            fresh.close()


@pytest.mark.timeout(60)
def test_remove_network_leaves_no_devices_veths_or_vm_namespaces() -> None:
    with two_hosts() as (hosts, planes):
        vm = planes[0].vm_namespace("port-a")
        assert vm in namespaces()
        planes[0].remove_network(NET)
        planes[0].remove_network(NET)  # idempotent

        links = ip("-o", "link", "show", netns=hosts[0].netns)
        names = {line.split(":")[1].strip().split("@")[0] for line in links.splitlines()}
        assert f"br{VNI}" not in names
        assert f"vx{VNI}" not in names
        assert not [name for name in names if name.startswith("t")]
        assert vm not in namespaces()
        assert planes[0].networks() == {}
        assert planes[0].ports() == {}
        assert planes[0].neighbours(NET) == {}
        assert planes[1].networks() == {NET: VNI}  # the other host is untouched
