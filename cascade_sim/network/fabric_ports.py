"""What a Neutron port should be in the region's fabric (``fabric``): a local port at its
host, a remote port at another cloud's tunnel endpoint, or nothing; and its security groups'
rules as the fabric's rule dicts.

- a port with ``binding:profile`` ``{"tunnel_ip": VTEP}`` (Tricircle's shadow ports of
  another cloud) on a vxlan network: a remote port, a neighbour at VTEP;
- a port bound to one of the region's hosts (``binding:host_id``, a ``compute:*`` device
  owner) on a vxlan network: a local port with its MAC, its first fixed IP within the
  network's CIDR (its first IPv4 subnet's), ``port_security_enabled`` and its rules;
- a router's interface (``network:router_interface``) bound to one of the region's hosts:
  a local port with the router (its ``device_id``) and the router's extra routes, never
  filtered (Neutron gives router ports no security groups), whatever its port security;
- either kind with its allowed address pairs (``allowed_address_pairs``) as its allowed
  addresses: each IPv4 host address (``a.b.c.d`` or ``a.b.c.d/32``; a wider prefix is not an
  address a neighbour entry can point at and is left out), at the port's MAC;
- anything else (unbound, a DHCP or gateway port, a flat or vlan network, no address within
  the CIDR): nothing.

A VM's port gets the subnet's ``gateway_ip`` as its default gateway, as DHCP would give it.

Rules: IPv4 only; protocol tcp, udp, icmp or any (by name or number). Other protocols, and
ICMP rules naming a type, are left out, so with port security on they admit nothing (never
more than Neutron would). A rule with ``remote_group_id`` becomes one rule per IPv4 address
of the group's member ports (every port in the group, bound or not, remote ones included),
``remote_ip_prefix`` ``address/32``; a port's allowed addresses count among its addresses
there, as Neutron counts them.

Imports ``cascade.fabric.goal`` and the region; of this package nothing (it sits below
``store``, as ``fabric`` does).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Any

from cascade.fabric.goal import PortSpec, RemotePortSpec
from cascade_sim.region import Region

Json = dict[str, Any]
ROUTER_INTERFACE = "network:router_interface"
Spec = PortSpec | RemotePortSpec
Rule = dict[str, Any]  # the fabric's: direction, protocol, port_min, port_max, remote_ip_prefix
# Neutron's protocol (a name or a number; None is any) -> the fabric's
PROTOCOLS = {None: "any", "tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp"}
PROTOCOLS |= {"icmp": "icmp", "1": "icmp"}


@dataclass(frozen=True)
class Membership:
    """What a port brings to the rules of others: its groups and its IPv4 addresses."""

    groups: frozenset[str]
    addresses: tuple[str, ...]

    @classmethod
    def of(cls, port: Json) -> Membership:
        ips = (fixed["ip_address"] for fixed in port["fixed_ips"])
        v4 = tuple(ip for ip in ips if ipaddress.ip_address(ip).version == 4)
        return cls(frozenset(port["security_groups"]), v4 + allowed_ips(port))


def allowed_ips(port: Json) -> tuple[str, ...]:
    """The port's allowed address pairs that are IPv4 host addresses, sorted."""
    found = set()
    for pair in port.get("allowed_address_pairs") or ():
        network = ipaddress.ip_network(pair["ip_address"], strict=False)
        if network.version == 4 and network.num_addresses == 1:
            found.add(str(network.network_address))
    return tuple(sorted(found))


Members = dict[str, Membership]  # by port id, every port of the region


@dataclass(frozen=True)
class Segment:
    """A vxlan network as the fabric knows it: its VNI and the CIDR and gateway of its first
    IPv4 subnet."""

    vni: int
    cidr: str
    gateway: str | None = None


def segment(site: Region, network_id: str) -> Segment | None:
    """The network's segment; None unless it is a vxlan network with an IPv4 subnet."""
    network = site.state.get("network", network_id)
    if network is None or network["provider:network_type"] != "vxlan":
        return None
    subnet = _first_v4_subnet(site, network)
    if subnet is None:
        return None
    vni = int(network["provider:segmentation_id"])
    return Segment(vni, str(subnet["cidr"]), subnet["gateway_ip"])


@dataclass(frozen=True)
class Wanted:
    """What a port should be in the fabric, and the segment of its fabric network."""

    spec: Spec
    segment: Segment


def wanted(
    site: Region,
    port: Json,
    segment: Segment | None,
    hosts: set[str],
    members: Members,
    rules: list[Json] | None,
) -> Wanted | None:
    """What ``port`` should be, given its network's segment, the region's host names, every
    port's membership and every security group rule (read from the state when None)."""
    ip = _address_in(port, segment.cidr) if segment else None
    if segment is None or ip is None:
        return None
    network_id, mac, pairs = port["network_id"], port["mac_address"].lower(), allowed_ips(port)
    vtep = (port["binding:profile"] or {}).get("tunnel_ip")
    if vtep:
        remote = RemotePortSpec(port["id"], network_id, mac, ip, str(vtep), pairs)
        return Wanted(remote, segment)
    host, owner = port["binding:host_id"], port["device_owner"]
    if host not in hosts:
        return None
    if owner == ROUTER_INTERFACE:
        router = port["device_id"]
        interface = PortSpec(port["id"], network_id, host, mac, ip, allowed_ips=pairs)
        return Wanted(
            replace(interface, router=router, routes=router_routes(site, router)), segment
        )
    if not owner.startswith("compute:"):
        return None
    security = bool(port["port_security_enabled"])
    translated = port_rules(site, port, members, rules) if security else ()
    local = PortSpec(port["id"], network_id, host, mac, ip, translated, security, pairs)
    return Wanted(replace(local, gateway=segment.gateway), segment)


def router_routes(site: Region, router_id: str) -> tuple[tuple[str, str], ...]:
    """A router's extra routes as (destination, nexthop), sorted."""
    router = site.state.get("router", router_id)
    routes = router["routes"] if router is not None else []
    return tuple(sorted({(r["destination"], r["nexthop"]) for r in routes}))


def same_routing(have: Json, spec: PortSpec) -> bool:
    """Whether the goal store's local port ``have`` has ``spec``'s gateway and routes."""
    return (have["gateway"], have["routes"]) == (spec.gateway, [list(r) for r in spec.routes])


def port_rules(
    site: Region, port: Json, members: Members, rules: list[Json] | None
) -> tuple[Rule, ...]:
    """The rules of the port's security groups, in a stable order."""
    groups = set(port["security_groups"])
    every = site.state.list("security_group_rule") if rules is None else rules
    mine = sorted((r for r in every if r["security_group_id"] in groups), key=_rule_id)
    return tuple(translated for rule in mine for translated in translate(rule, members))


def translate(rule: Json, members: Members) -> list[Rule]:
    """A Neutron rule as the fabric's rules: none, one, or one per remote-group address."""
    protocol = PROTOCOLS.get(rule["protocol"])
    if rule["ethertype"] != "IPv4" or protocol is None:
        return []
    if protocol == "icmp" and rule["port_range_min"] is not None:
        return []
    base: Rule = {"direction": rule["direction"], "protocol": protocol}
    if protocol in ("tcp", "udp"):
        for key, name in (("port_min", "port_range_min"), ("port_max", "port_range_max")):
            if rule[name] is not None:
                base[key] = rule[name]
    remote = rule["remote_group_id"]
    if remote is None:
        prefix = rule["remote_ip_prefix"]
        return [{**base, "remote_ip_prefix": prefix} if prefix else base]
    found = (m.addresses for m in members.values() if remote in m.groups)
    return [{**base, "remote_ip_prefix": f"{a}/32"} for a in sorted({a for f in found for a in f})]


def same(have: Json, spec: Spec, rules: bool = True) -> bool:
    """Whether the goal store's port ``have`` is ``spec`` but for its allowed addresses
    (``rules`` False: and for its rules and port security)."""
    same_port = (have["network_id"], have["mac"], have["ip"]) == (
        spec.network_id,
        spec.mac,
        spec.ip,
    )
    if isinstance(spec, RemotePortSpec):
        return same_port and have["kind"] == "remote" and have["vtep"] == spec.vtep
    same_port = same_port and have["kind"] == "local" and have["host"] == spec.host
    same_port = same_port and have["router"] == spec.router
    if not rules:
        return same_port
    stored = (have["security_rules"], have["port_security"])
    return same_port and stored == ([dict(r) for r in spec.security_rules], spec.port_security)


def _rule_id(rule: Json) -> str:
    return str(rule["id"])


def _first_v4_subnet(site: Region, network: Json) -> Json | None:
    for subnet_id in network["subnets"]:
        subnet = site.state.get("subnet", subnet_id)
        if subnet is not None and subnet["ip_version"] == 4:
            return subnet
    return None


def _address_in(port: Json, cidr: str) -> str | None:
    network = ipaddress.ip_network(cidr)
    for fixed in port["fixed_ips"]:
        if ipaddress.ip_address(fixed["ip_address"]) in network:
            return str(fixed["ip_address"])
    return None
