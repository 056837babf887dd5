"""Routers in emulated regions on the Linux dataplane: a router joining two subnets of one
region forwards between servers on different hosts (its interfaces live in a router
namespace on the region's first host, the servers leave through their subnets' gateways),
and routers at two regions joined by a transit network (the same VNI at both, each router's
transit port a remote port at the other region) with extra routes toward each other's
subnet carry a ping from a server at one region to a server on another subnet at the other.
Real ``cascade site-sim --dataplane linux --underlay`` processes driven through openstacksdk;
skipped outside CI unless root (``require_netns``)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from cascade.cli.embedded import EmbeddedSite
from cascade.fabric.dataplane.names import router_namespace
from cascade.sites.driver import SiteDriver
from tests.fabric.netns import namespaces, require_netns, run_in
from tests.sim.linux_regions import Placed, boot, eventually, regions, remote_port, vxlan_network

POOL = ("10", "99")  # last octets of each subnet's pool


def pool(cidr: str, first: str = POOL[0], last: str = POOL[1]) -> tuple[str, str]:
    base = cidr.rsplit(".", 1)[0]
    return f"{base}.{first}", f"{base}.{last}"


def admit_pings(conn: Any, server: Placed) -> None:
    """Let the server's security group admit ICMP from anywhere (its default group admits
    only its members, which servers on other subnets routed here are not)."""
    conn.network.create_security_group_rule(
        security_group_id=server.port.security_group_ids[0],
        direction="ingress",
        protocol="icmp",
        ethertype="IPv4",
        remote_ip_prefix="0.0.0.0/0",
    )


def server_on(site: EmbeddedSite, conn: Any, vni: int, cidr: str, name: str) -> Placed:
    network, _ = vxlan_network(conn, vni, cidr, pool(cidr))
    return boot(site, conn, network.id, name)


def host_namespace(placed: Placed, host: str) -> str:
    (found,) = [h["namespace"] for h in placed.dataplane()["hosts"] if h["name"] == host]
    return str(found)


def test_a_router_joins_two_subnets_of_a_region(tmp_path: Path) -> None:
    require_netns()
    with ExitStack() as stack:
        (site,) = regions(stack, tmp_path, "fab-r1")
        conn = SiteDriver(site.access()).connection
        x = server_on(site, conn, 4281, "10.81.0.0/24", "x")
        y = server_on(site, conn, 4282, "10.82.0.0/24", "y")
        assert x.port.binding_host_id != y.port.binding_host_id
        admit_pings(conn, x)  # y is in the same default group
        router = conn.network.create_router(name="r")
        for placed in (x, y):
            subnet = placed.port.fixed_ips[0]["subnet_id"]
            conn.network.add_interface_to_router(router, subnet_id=subnet)

        eventually(lambda: x.reaches(y), "a ping from 10.81.0.0/24 to 10.82.0.0/24")
        eventually(lambda: y.reaches(x), "a ping back")
        (interface, *_) = conn.network.ports(device_id=router.id)
        host = host_namespace(x, interface.binding_host_id)
        inside = router_namespace(host, router.id)
        routes = run_in(inside, "ip", "route")
        assert "10.81.0.0/24" in routes
        assert "10.82.0.0/24" in routes
        assert run_in(inside, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"
        for placed in (x, y):
            subnet = placed.port.fixed_ips[0]["subnet_id"]
            conn.network.remove_interface_from_router(router, subnet_id=subnet)
        eventually(lambda: inside not in namespaces(), "the router namespace to go")
        assert not x.reaches(y)


def transit_interface(site: EmbeddedSite, conn: Any, network_id: str, router: Any) -> Any:
    """A port on the transit network plugged into the router (by port); it as bound, and
    the tunnel endpoint of its host."""
    port = conn.network.create_port(network_id=network_id)
    conn.network.add_interface_to_router(router, port_id=port.id)
    port = conn.network.get_port(port.id)
    (agent,) = conn.network.agents(host=port.binding_host_id)
    return port, agent.configuration["tunneling_ip"]


def test_routers_at_two_regions_route_over_a_transit_network(tmp_path: Path) -> None:
    require_netns()
    with ExitStack() as stack:
        sites = regions(stack, tmp_path, "fab-t1", "fab-t2")
        conns = [SiteDriver(site.access()).connection for site in sites]
        x = server_on(sites[0], conns[0], 4281, "10.81.0.0/24", "x")
        y = server_on(sites[1], conns[1], 4282, "10.82.0.0/24", "y")
        admit_pings(conns[0], x)
        admit_pings(conns[1], y)
        transit = "100.64.0.0/24"
        transits = [
            vxlan_network(conns[0], 4290, transit, pool(transit, "10", "99"))[0],
            vxlan_network(conns[1], 4290, transit, pool(transit, "100", "199"))[0],
        ]
        routers, ends = [], []
        for site, conn, placed, network in zip(sites, conns, (x, y), transits, strict=True):
            router = conn.network.create_router(name="cascade-router")
            conn.network.add_interface_to_router(
                router, subnet_id=placed.port.fixed_ips[0]["subnet_id"]
            )
            routers.append(router)
            ends.append(transit_interface(site, conn, network.id, router))
        for here, there in ((0, 1), (1, 0)):
            port, vtep = ends[there]
            remote_port(conns[here], transits[here].id, port, vtep)
            other = ("10.82.0.0/24", "10.81.0.0/24")[here]
            nexthop = port.fixed_ips[0]["ip_address"]
            route = {"destination": other, "nexthop": nexthop}
            conns[here].network.update_router(routers[here], routes=[route])

        eventually(lambda: x.reaches(y), "a ping from region 1's subnet to region 2's")
        eventually(lambda: y.reaches(x), "a ping back")
