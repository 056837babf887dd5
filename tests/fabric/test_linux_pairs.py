"""Allowed addresses on the Linux dataplane, on hosts made of network namespaces: a port's
guest takes its allowed address and answers on it through its anti-spoofing filter, the
other host gets an ARP entry for it at the port's MAC, and dropping it takes away that
entry and the guest's address but not the port's own entries. Needs root (skips otherwise)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cascade.fabric.dataplane.base import Neighbour
from cascade.fabric.dataplane.linux import LinuxDataplane
from tests.fabric.netns import ping, run_in
from tests.fabric.test_linux_dataplane import MAC_B, NET, B, arp, fdb, two_hosts

VIP = "10.77.0.50"
RULES = ({"direction": "ingress", "protocol": "icmp"}, {"direction": "egress", "protocol": "any"})


@pytest.mark.timeout(90)
def test_an_allowed_address_is_taken_announced_and_dropped() -> None:
    with two_hosts() as (hosts, planes):
        secured = replace(B, security_rules=RULES, port_security=True)
        holder = Neighbour(MAC_B, "10.77.0.2", hosts[1].vtep, (VIP,))
        planes[1].set_port(replace(secured, allowed_ips=(VIP,)))
        planes[0].update_neighbours(NET, {"port-b": holder}, [])
        assert f"{VIP} lladdr {MAC_B} PERMANENT" in arp(hosts[0])
        vm_a, vm_b = planes[0].vm_namespace("port-a"), planes[1].vm_namespace("port-b")
        assert f"{VIP}/24" in run_in(vm_b, "ip", "-4", "addr", "show", "eth0")
        assert ping(vm_a, VIP)  # answered from VIP: admitted by b's anti-spoofing
        fresh = LinuxDataplane(hosts[1].netns, hosts[1].vtep)
        try:
            assert fresh.ports()["port-b"].allowed_ips == (VIP,)  # read back from the kernel
        finally:
            fresh.close()

        planes[1].set_port(secured)
        planes[0].update_neighbours(NET, {"port-b": replace(holder, pairs=())}, [])
        assert VIP not in arp(hosts[0])
        assert "10.77.0.2 lladdr" in arp(hosts[0])
        assert MAC_B in fdb(hosts[0])  # the port's own FDB entry stays
        assert VIP not in run_in(vm_b, "ip", "-4", "addr", "show", "eth0")
        assert planes[1].ports()["port-b"].allowed_ips == ()
        assert ping(vm_a, "10.77.0.2")
        assert not ping(vm_a, VIP)
