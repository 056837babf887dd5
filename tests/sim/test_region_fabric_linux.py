"""Two emulated regions on the Linux dataplane, one underlay: a server at each on the same
VNI, each known at the other region as a remote port toward the VTEP of the host it is bound
to (read from the other region's ``/v2.0/agents``), and a ping between the servers' VM
namespaces crosses the underlay.

On the same sites, through region A's Neutron API only: a's port in a security group without
a rule admitting ICMP cannot be pinged from b; adding the rule lets b's pings through,
removing it blocks them again. Each step is waited for on its acknowledgement (the port's
host applied the goal holding the change), never for a time, and at that moment the kernel
already holds exactly the goal's rules: the agent acknowledges only what it enforced.

Then region A is SIGKILLed in the middle of a burst of changes (a remote port deleted,
another created, the ICMP rule added back) and started again on the same namespaces: once
its host acknowledges, the kernel (nftables, FDB and ARP, read back by a fresh dataplane
object) holds exactly the goal and the rule admits b's pings again.

Last, deleting a remote port takes its FDB and ARP entries away and the ping fails; sites
that stop remove their namespaces. Real ``cascade site-sim --dataplane linux --underlay``
processes, driven through openstacksdk; skipped outside CI unless root (``require_netns``)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cascade.cli.embedded import EmbeddedSite
from cascade.fabric.dataplane.base import LocalPort, Neighbour
from cascade.fabric.dataplane.linux import LinuxDataplane
from tests.fabric.netns import namespaces, require_netns, run_in
from tests.sim.linux_regions import (
    START_TIMEOUT,
    Placed,
    eventually,
    new_namespaces_removed,
    place,
    regions,
    remote_port,
    shadow,
    underlay_bridge,
)

__all__ = ["new_namespaces_removed", "underlay_bridge"]  # tests.network.linux_sites uses them

ICMP_IN = {"direction": "ingress", "protocol": "icmp", "remote_ip_prefix": "0.0.0.0/0"}


def answers(source: Placed, target: Placed) -> bool:
    """A ping answered, of up to three (the machine may be loaded); a blocked one is not."""
    return any(source.reaches(target) for _ in range(3))


def goal_port(placed: Placed) -> dict[str, Any] | None:
    """The server's port as its region's goal holds it, once its host acknowledged that goal
    and no rule update is pending; None before."""
    view = placed.dataplane()
    held = [p for p in view["ports"] if p["id"] == placed.port.id]
    hosts = [h for h in view["hosts"] if h["name"] == placed.port.binding_host_id]
    if view["rules_pending"] or not held or not hosts or not hosts[0]["converged"]:
        return None
    return dict(held[0])


def admits_icmp(rules: list[dict[str, Any]]) -> bool:
    return any(all(rule.get(key) == value for key, value in ICMP_IN.items()) for rule in rules)


def acknowledged(placed: Placed, icmp: bool) -> dict[str, Any]:
    """Wait until the port's host acknowledged a goal whose rules admit ICMP (or not);
    the port as the goal holds it."""
    found: list[dict[str, Any]] = []

    def done() -> bool:
        port = goal_port(placed)
        found[:] = [port] if port is not None else []
        return port is not None and admits_icmp(port["security_rules"]) == icmp

    eventually(done, f"the acknowledgement of a goal {'with' if icmp else 'without'} ICMP", 60)
    return found[0]


def kernel(placed: Placed, host: str) -> tuple[dict[str, LocalPort], dict[str, Neighbour]]:
    """What the kernel of the server's host (namespace ``host``) holds, read by a fresh
    dataplane object: its ports (with the nftables rules in force) and the network's remote
    neighbours by MAC."""
    plane = LinuxDataplane(host, placed.vtep)
    try:
        table = plane.neighbours(placed.network_id)
        return plane.ports(), {n.mac: n for n in table.values()}
    finally:
        plane.close()


def enforced(placed: Placed) -> list[dict[str, Any]]:
    """The rules the kernel enforces on the server's port."""
    ports, _ = kernel(placed, placed.host_namespace())
    return [dict(rule) for rule in ports[placed.port.id].security_rules]


def security_group_gates_pings(a: Placed, b: Placed) -> tuple[Any, Any]:
    """a's port moves to a group admitting no ICMP, then the rule comes and goes; b pings
    a only while it is there. The group, and the ingress rule's body to add it again."""
    conn = a.conn
    closed = conn.network.create_security_group(name="no-icmp")  # egress only, as Neutron's
    conn.network.update_port(a.port, security_groups=[closed.id])
    goal = acknowledged(a, icmp=False)
    assert goal["port_security"] is True
    assert enforced(a) == goal["security_rules"]
    assert not answers(b, a)
    assert answers(a, b)  # the port works: egress passes and its replies come back

    rule = {"security_group_id": closed.id, "ethertype": "IPv4", **ICMP_IN}
    created = conn.network.create_security_group_rule(**rule)
    goal = acknowledged(a, icmp=True)
    assert enforced(a) == goal["security_rules"]  # in force when acknowledged
    assert answers(b, a)

    conn.network.delete_security_group_rule(created)
    goal = acknowledged(a, icmp=False)
    assert enforced(a) == goal["security_rules"]
    assert not answers(b, a)
    return closed, rule


def stand_in(at: Placed, mac: str, address: str, vtep: str) -> Any:
    """At ``at``'s region, a remote port for a server elsewhere (none needs to exist)."""
    port = SimpleNamespace(mac_address=mac, fixed_ips=[{"ip_address": address}])
    return remote_port(at.conn, at.network_id, port, vtep)


def sigkilled_region_returns_to_its_goal(site: EmbeddedSite, a: Placed, b: Placed) -> None:
    """Region A is killed mid-change and started again: the kernel ends exactly at the goal,
    remote ports and nftables rules alike."""
    closed, rule = security_group_gates_pings(a, b)
    host = a.host_namespace()
    old = stand_in(a, "02:42:00:00:00:c9", "10.42.0.201", b.vtep)
    eventually(lambda: "02:42:00:00:00:c9" in kernel(a, host)[1], "the first stand-in's FDB entry")

    a.conn.network.delete_port(old)
    new = stand_in(a, "02:42:00:00:00:ca", "10.42.0.202", b.vtep)
    a.conn.network.create_security_group_rule(**rule)
    site.kill()  # the rule's update waits REFRESH_DELAY (0.2 s) at least: still in flight
    ports, _ = kernel(a, host)
    assert not admits_icmp([dict(r) for r in ports[a.port.id].security_rules]), "not mid-change"

    site.start(timeout=START_TIMEOUT)  # on the namespaces, FDB and chains the kill left
    goal = acknowledged(a, icmp=True)
    ports, neighbours = kernel(a, host)
    assert set(ports) == {a.port.id}
    assert [dict(r) for r in ports[a.port.id].security_rules] == goal["security_rules"]
    assert ports[a.port.id].port_security is True
    assert {mac: (n.ip, n.vtep) for mac, n in neighbours.items()} == {
        b.port.mac_address: (b.ip, b.vtep),
        new.mac_address: ("10.42.0.202", b.vtep),
    }
    assert answers(b, a)
    assert closed.id in a.conn.network.get_port(a.port.id).security_group_ids
    a.conn.network.delete_port(new)  # else b's VTEP stays a flood target of the network
    eventually(lambda: new.mac_address not in kernel(a, host)[1], "the stand-in's FDB entry to go")


def test_servers_at_regions_ping_as_security_groups_allow_through_a_sigkill(
    tmp_path: Path,
) -> None:
    require_netns()
    with ExitStack() as stack:
        sites = regions(stack, tmp_path, "fab-a", "fab-b")
        a = place(sites[0], ("10.42.0.10", "10.42.0.99"))
        b = place(sites[1], ("10.42.0.100", "10.42.0.199"))
        assert a.vtep != b.vtep
        remote_b = shadow(a, b)
        shadow(b, a)

        eventually(lambda: a.reaches(b), "a ping from a's server to b's")
        eventually(lambda: b.reaches(a), "a ping from b's server to a's")
        host_a = a.host_namespace()
        assert b.port.mac_address in run_in(host_a, "bridge", "fdb", "show")
        assert b.ip in run_in(host_a, "ip", "neigh", "show")

        sigkilled_region_returns_to_its_goal(sites[0], a, b)

        a.conn.network.delete_port(remote_b)
        mac, address = b.port.mac_address, b.ip
        eventually(
            lambda: (
                mac not in run_in(host_a, "bridge", "fdb", "show")
                and address not in run_in(host_a, "ip", "neigh", "show")
            ),
            "b's FDB and ARP entries to leave a's host",
        )
        assert not a.reaches(b)
        made = {a.host_namespace(), b.host_namespace(), a.vm_namespace(), b.vm_namespace()}
        for site in sites:
            site.stop()
        assert not made & namespaces()  # a region that stops removes its hosts' namespaces
