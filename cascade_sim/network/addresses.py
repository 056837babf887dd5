"""IP addresses and MACs: a subnet's host range and pools, a port's fixed IPs taken (asked
for or automatic, one of each IP version) in scope ``ip:<subnet id>``, and its MAC in scope
``mac``, so that none is ever given twice."""

from __future__ import annotations

import ipaddress
import secrets

from cascade_sim.errors import SimError
from cascade_sim.network.errors import bad, error, invalid
from cascade_sim.network.kinds import Json
from cascade_sim.network.store import allocate_first, subnets_of
from cascade_sim.region import Region


def address(version: int, number: int) -> str:
    return str(ipaddress.IPv4Address(number) if version == 4 else ipaddress.IPv6Address(number))


def host_range(cidr: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int]:
    """The usable addresses: not the network address, nor IPv4's broadcast address."""
    last = int(cidr.broadcast_address) - (1 if cidr.version == 4 else 0)
    return int(cidr.network_address) + 1, last


def is_host(subnet: Json, ip: str) -> bool:
    cidr = ipaddress.ip_network(subnet["cidr"])
    first, last = host_range(cidr)
    number = ipaddress.ip_address(ip)
    return number.version == cidr.version and first <= int(number) <= last


def pool_ranges(subnet: Json) -> list[tuple[int, int]]:
    pools = subnet["allocation_pools"]
    return [
        (int(ipaddress.ip_address(p["start"])), int(ipaddress.ip_address(p["end"]))) for p in pools
    ]


def ip_scope(subnet_id: str) -> str:
    return f"ip:{subnet_id}"


def _free_ip(site: Region, subnet: Json, owner: str) -> str | None:
    version = subnet["ip_version"]
    pooled = (
        address(version, number)
        for first, last in pool_ranges(subnet)
        for number in range(first, last + 1)
    )
    return allocate_first(site, ip_scope(subnet["id"]), pooled, owner)


def _exhausted(network: Json) -> SimError:
    message = f"No more IP addresses available on network {network['id']}."
    return error(409, "IpAddressGenerationFailure", message)


def _auto_ips(site: Region, network: Json, subnets: list[Json], owner: str) -> list[Json]:
    """One address of each IP version the network has, from its first subnet with room."""
    taken = []
    for version in sorted({subnet["ip_version"] for subnet in subnets}):
        for subnet in (s for s in subnets if s["ip_version"] == version):
            free = _free_ip(site, subnet, owner)
            if free is not None:
                taken.append({"subnet_id": subnet["id"], "ip_address": free})
                break
        else:
            raise _exhausted(network)
    return taken


def _subnet_for(network: Json, subnets: list[Json], wanted: Json) -> Json:
    if "subnet_id" in wanted:
        for subnet in subnets:
            if subnet["id"] == wanted["subnet_id"]:
                return subnet
        raise bad(
            f"Failed to create port on network {network['id']}, because fixed_ips included "
            f"invalid subnet {wanted['subnet_id']}.",
            "InvalidInput",
        )
    if "ip_address" not in wanted:
        raise invalid("fixed_ips", "each entry needs a subnet_id or an ip_address")
    for subnet in subnets:
        if ipaddress.ip_address(wanted["ip_address"]) in ipaddress.ip_network(subnet["cidr"]):
            return subnet
    raise bad(
        f"IP address {wanted['ip_address']} is not a valid IP for any of the subnets on the "
        "specified network.",
        "InvalidIpForNetwork",
    )


def _take_ip(site: Region, network: Json, subnets: list[Json], owner: str, wanted: Json) -> Json:
    subnet = _subnet_for(network, subnets, wanted)
    ip = wanted.get("ip_address")
    if ip is None:
        ip = _free_ip(site, subnet, owner)
        if ip is None:
            raise _exhausted(network)
    elif not is_host(subnet, ip):
        message = f"IP address {ip} is not a valid IP for the specified subnet."
        raise bad(message, "InvalidIpForSubnet")
    elif not site.state.allocate(ip_scope(subnet["id"]), ip, owner):
        message = f"IP address {ip} already allocated in subnet {subnet['id']}"
        raise error(409, "IpAddressAlreadyAllocated", message)
    return {"subnet_id": subnet["id"], "ip_address": ip}


def take_ips(site: Region, network: Json, owner: str, wanted: list[Json] | None) -> list[Json]:
    """The fixed IPs asked for (``None``: automatic), taken for ``owner``."""
    subnets = subnets_of(site, network)
    if wanted is None:
        return _auto_ips(site, network, subnets, owner)
    explicit = [item["ip_address"] for item in wanted if "ip_address" in item]
    if len(explicit) != len(set(explicit)):
        raise invalid("fixed_ips", "an IP address is requested twice")
    return [_take_ip(site, network, subnets, owner, item) for item in wanted]


def _release_ips(site: Region, network: Json, owner: str) -> None:
    for subnet_id in network["subnets"]:
        site.state.release(owner, ip_scope(subnet_id))


def retake_ips(site: Region, network: Json, port: Json, wanted: list[Json]) -> list[Json]:
    """Replace a port's fixed IPs; on failure it keeps the ones it had."""
    _release_ips(site, network, port["id"])
    try:
        return take_ips(site, network, port["id"], wanted)
    except SimError:
        _release_ips(site, network, port["id"])
        for fixed in port["fixed_ips"]:
            site.state.allocate(ip_scope(fixed["subnet_id"]), fixed["ip_address"], port["id"])
        raise


def take_mac(site: Region, port: Json, network: Json) -> str:
    """The MAC asked for, or a random ``fa:16:3e`` one, taken for the port."""
    wanted = port["mac_address"]
    if wanted is not None:
        if not site.state.allocate("mac", wanted, port["id"]):
            message = (
                f"Unable to complete operation for network {network['id']}. "
                f"The mac address {wanted} is in use."
            )
            raise error(409, "MacAddressInUse", message)
        return str(wanted)
    for _attempt in range(64):
        mac = "fa:16:3e:" + ":".join(f"{octet:02x}" for octet in secrets.token_bytes(3))
        if site.state.allocate("mac", mac, port["id"]):
            return mac
    raise error(409, "MacAddressGenerationFailure", "Unable to generate a unique mac.")
