"""Subnets: the CIDR's gateway and default allocation pools, Neutron's checks of pools,
routes, name servers and IPv6 modes, no overlap on a network, who sees a subnet (its project,
or everyone when its network is shared), and removal once no port but DHCP uses it."""

from __future__ import annotations

import ipaddress
import itertools

from cascade_sim.network import checks
from cascade_sim.network.addresses import address, host_range, ip_scope, is_host, pool_ranges
from cascade_sim.network.errors import bad, error, forbidden, invalid
from cascade_sim.network.kinds import NAMED, Actor, Attr, Json, Kind
from cascade_sim.network.networks import NETWORK, network_of
from cascade_sim.network.resources import load
from cascade_sim.network.store import DHCP, drop, ports_where, revise, save, subnets_of
from cascade_sim.region import Region

IPV6_MODE = checks.nullable(checks.choice("slaac", "dhcpv6-stateful", "dhcpv6-stateless"))


def _subnet_visible(site: Region, actor: Actor, subnet: Json) -> bool:
    return actor.owns(subnet) or bool(network_of(site, subnet)["shared"])


def _default_pools(subnet: Json) -> list[Json]:
    """Every usable address of the CIDR but the gateway, as Neutron's default pools."""
    first, last = host_range(ipaddress.ip_network(subnet["cidr"]))
    gateway = int(ipaddress.ip_address(subnet["gateway_ip"])) if subnet["gateway_ip"] else None
    ranges = [(first, last)]
    if gateway is not None and first <= gateway <= last:
        ranges = [(first, gateway - 1), (gateway + 1, last)]
    version = subnet["ip_version"]
    return [
        {"start": address(version, low), "end": address(version, high)}
        for low, high in ranges
        if low <= high
    ]


def _check_pools(subnet: Json) -> None:
    for pool, (low, high) in zip(subnet["allocation_pools"], pool_ranges(subnet), strict=True):
        inside = is_host(subnet, pool["start"]) and is_host(subnet, pool["end"])
        if not inside or low > high:
            message = (
                f"The allocation pool {pool['start']}-{pool['end']} spans beyond the subnet "
                f"cidr {subnet['cidr']}."
            )
            raise bad(message, "OutOfBoundsAllocationPool")
    ranges = sorted(pool_ranges(subnet))
    if any(low <= high for (_, high), (low, _) in itertools.pairwise(ranges)):
        raise bad("Found overlapping allocation pools.", "OverlappingAllocationPools")
    gateway = subnet["gateway_ip"]
    if gateway and any(low <= int(ipaddress.ip_address(gateway)) <= high for low, high in ranges):
        message = f"Gateway ip {gateway} conflicts with allocation pool."
        raise error(409, "GatewayConflictWithAllocationPools", message)


def _check_layout(subnet: Json) -> None:
    """Gateway, pools, routes and name servers against the CIDR."""
    cidr = ipaddress.ip_network(subnet["cidr"])
    first, last = host_range(cidr)
    if first > last:
        raise invalid("cidr", f"{cidr} has no room for hosts")
    if subnet["gateway_ip"] and not is_host(subnet, subnet["gateway_ip"]):
        raise invalid("gateway_ip", f"{subnet['gateway_ip']} is not a host address of {cidr}")
    _check_pools(subnet)
    for route in subnet["host_routes"]:
        versions = {ipaddress.ip_network(route["destination"]).version}
        if versions | {ipaddress.ip_address(route["nexthop"]).version} != {cidr.version}:
            raise invalid("host_routes", f"{route} does not match IP version {cidr.version}")
    if len(set(subnet["dns_nameservers"])) != len(subnet["dns_nameservers"]):
        raise invalid("dns_nameservers", "a name server is listed twice")


def _check_ipv6_modes(subnet: Json) -> None:
    modes = {subnet["ipv6_ra_mode"], subnet["ipv6_address_mode"]} - {None}
    if modes and subnet["ip_version"] == 4:
        raise invalid("ipv6_address_mode", "IPv6 modes cannot be set on an IPv4 subnet")
    if len(modes) > 1:
        raise invalid("ipv6_ra_mode", "ipv6_ra_mode and ipv6_address_mode must be equal")


def _check_no_overlap(site: Region, network: Json, subnet: Json) -> None:
    cidr = ipaddress.ip_network(subnet["cidr"])
    for other in subnets_of(site, network):
        if cidr.overlaps(ipaddress.ip_network(other["cidr"])):
            raise bad(
                f"Invalid input for operation: Requested subnet with cidr: {cidr} for network: "
                f"{network['id']} overlaps with another subnet.",
                "InvalidInput",
            )


def _own_network(site: Region, actor: Actor, network_id: str) -> Json:
    network = load(site, NETWORK, actor, network_id)
    if not actor.owns(network):
        raise forbidden("rule:create_subnet")
    return network


def _build_subnet(site: Region, actor: Actor, attrs: Json, subnet: Json) -> None:
    network = _own_network(site, actor, subnet["network_id"])
    cidr = ipaddress.ip_network(subnet["cidr"])
    if subnet["ip_version"] not in (None, cidr.version):
        raise invalid("ip_version", f"{subnet['cidr']} is not an IPv{subnet['ip_version']} CIDR")
    subnet["ip_version"] = cidr.version
    if "gateway_ip" not in attrs:
        subnet["gateway_ip"] = address(cidr.version, host_range(cidr)[0])
    if subnet["allocation_pools"] is None:
        subnet["allocation_pools"] = _default_pools(subnet)
    _check_layout(subnet)
    _check_ipv6_modes(subnet)
    _check_no_overlap(site, network, subnet)
    subnet.update(subnetpool_id=None, segment_id=None, service_types=[])
    network["subnets"].append(subnet["id"])
    save(site, NETWORK.name, network)


def _change_subnet(_site: Region, _actor: Actor, subnet: Json, attrs: Json) -> None:
    subnet.update(attrs)
    _check_layout(subnet)


def _strip_subnet(site: Region, port: Json, subnet_id: str) -> None:
    port["fixed_ips"] = [f for f in port["fixed_ips"] if f["subnet_id"] != subnet_id]
    site.state.release(port["id"], ip_scope(subnet_id))
    revise(site, "port", port)


def _remove_subnet(site: Region, _actor: Actor, subnet: Json) -> None:
    users = [
        port
        for port in ports_where(site, network_id=subnet["network_id"])
        if any(fixed["subnet_id"] == subnet["id"] for fixed in port["fixed_ips"])
    ]
    if any(port["device_owner"] != DHCP for port in users):
        message = (
            f"Unable to complete operation on subnet {subnet['id']}: "
            "One or more ports have an IP allocation from this subnet."
        )
        raise error(409, "SubnetInUse", message)
    for port in users:
        _strip_subnet(site, port, subnet["id"])
    network = network_of(site, subnet)
    network["subnets"].remove(subnet["id"])
    save(site, NETWORK.name, network)
    drop(site, SUBNET.name, subnet)


SUBNET = Kind(
    "subnet",
    "subnets",
    "Subnet",
    "Subnet",
    {
        **NAMED,
        "network_id": Attr(checks.uuid, put=False, required=True),
        "cidr": Attr(checks.cidr, put=False, required=True),
        "ip_version": Attr(checks.choice(4, 6), None, put=False),
        "gateway_ip": Attr(checks.nullable(checks.ip), None),
        "allocation_pools": Attr(
            checks.list_of(checks.record({"start": checks.ip, "end": checks.ip})), None
        ),
        "enable_dhcp": Attr(checks.boolean, True),
        "dns_nameservers": Attr(checks.list_of(checks.ip), []),
        "host_routes": Attr(checks.list_of(checks.ROUTE), []),
        "ipv6_ra_mode": Attr(IPV6_MODE, None, put=False),
        "ipv6_address_mode": Attr(IPV6_MODE, None, put=False),
        "subnetpool_id": Attr(),
        "segment_id": Attr(),
        "service_types": Attr(),
    },
    build=_build_subnet,
    change=_change_subnet,
    remove=_remove_subnet,
    visible=_subnet_visible,
)
