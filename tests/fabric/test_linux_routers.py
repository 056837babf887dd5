"""Routers on the Linux dataplane, on hosts made of network namespaces: a router's interface
lives in the router's namespace with the subnet's gateway address, forwarding on and the
router's routes; a VM's port gets its default route through the gateway; a fresh object
reads all of it back from the kernel, a changed port is reconciled exactly, and the router
namespace goes with its last interface. Needs root (skips otherwise)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cascade.fabric.dataplane.base import LocalPort
from cascade.fabric.dataplane.linux import LinuxDataplane
from cascade.fabric.dataplane.names import router_namespace
from tests.fabric.netns import namespaces, ping, run_in
from tests.fabric.test_linux_dataplane import NET, VNI, A, two_hosts

GATEWAY = "10.77.0.254"
ROUTES = (("10.98.0.0/24", "10.77.0.2"), ("10.99.0.0/24", "10.77.0.2"))
INTERFACE = LocalPort(
    "router-port", NET, VNI, "02:00:00:00:00:fe", f"{GATEWAY}/24", router="r1", routes=ROUTES
)


@pytest.mark.timeout(90)
def test_a_router_interface_its_routes_and_a_vms_gateway_read_back_and_reconcile() -> None:
    with two_hosts() as (hosts, planes):
        plane = planes[0]
        plane.set_port(INTERFACE)
        plane.set_port(replace(A, gateway=GATEWAY))
        inside = router_namespace(hosts[0].netns, "r1")
        assert run_in(inside, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"
        assert ping(plane.vm_namespace("port-a"), GATEWAY)  # the router answers on it
        assert "default via 10.77.0.254" in run_in(plane.vm_namespace("port-a"), "ip", "route")

        fresh = LinuxDataplane(hosts[0].netns, hosts[0].vtep)
        try:
            held = fresh.ports()
            assert held["router-port"] == INTERFACE
            assert held["port-a"].gateway == GATEWAY
            fresh.set_port(replace(INTERFACE, routes=ROUTES[1:]))
            fresh.set_port(A)  # no gateway any more
            held = fresh.ports()
            assert held["router-port"].routes == ROUTES[1:]
            assert "10.98.0.0" not in run_in(inside, "ip", "route")
            assert held["port-a"].gateway is None
            fresh.remove_port("router-port")
            assert inside not in namespaces()
        finally:
            fresh.close()
