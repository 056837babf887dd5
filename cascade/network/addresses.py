"""Central allocation for networks that span sites: VNIs, addresses and MACs.

A VNI is unique among live networks (the ``networks.vni`` unique constraint; a network's row,
and so its VNI, lives until it is deleted at every site). Addresses are unique per network
(``network_ports``' and ``service_ips``' constraints, and checked against each other)
whatever site holds the port, so nothing collides across
sites; two tenants' networks may share a CIDR, each on its own VNI. A port's MAC is derived
from its network's VNI and its address (locally administered ``02:`` prefix, then the VNI's
three bytes, then the address's low 16 bits): unique within the network, and across networks
too, which is why a network is at most a /16. The first address is the subnet's gateway.
"""

from __future__ import annotations

import ipaddress

from sqlalchemy import select
from sqlalchemy.orm import Session

from cascade.db.network_models import Network, NetworkPort, ServiceIP
from cascade.errors import BadRequest, Conflict

FIRST_VNI = 4096  # below: left to the sites' own tenant networks
LAST_VNI = 2**24 - 1
WIDEST_PREFIX = 16
NARROWEST_PREFIX = 29


def network_of(cidr: str) -> ipaddress.IPv4Network:
    """The CIDR as an IPv4 network, or 400 saying what is wrong with it."""
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as error:
        raise BadRequest(f"cidr {cidr!r} is not a network address: {error}") from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise BadRequest(f"cidr {cidr}: only IPv4 networks are supported")
    if not WIDEST_PREFIX <= network.prefixlen <= NARROWEST_PREFIX:
        raise BadRequest(
            f"cidr {cidr}: the prefix must be /{WIDEST_PREFIX} to /{NARROWEST_PREFIX} "
            f"(a MAC carries the address's low 16 bits; a smaller network has no room)"
        )
    return network


def gateway(cidr: str) -> str:
    return str(next(network_of(cidr).hosts()))


def next_vni(session: Session) -> int:
    """The lowest VNI no live network holds."""
    used = session.scalars(
        select(Network.vni).where(Network.vni >= FIRST_VNI).order_by(Network.vni)
    )
    candidate = FIRST_VNI
    for vni in used:
        if vni > candidate:
            break
        candidate = vni + 1
    if candidate > LAST_VNI:
        raise Conflict("every VNI is taken: delete a network first")
    return candidate


def mac_for(vni: int, address: str) -> str:
    low = int(ipaddress.IPv4Address(address)) & 0xFFFF
    octets = [0x02, vni >> 16 & 0xFF, vni >> 8 & 0xFF, vni & 0xFF, low >> 8, low & 0xFF]
    return ":".join(f"{octet:02x}" for octet in octets)


def free_address(session: Session, network: Network, wanted: str | None = None) -> str:
    """``wanted`` if it is a free host address of the network, else the lowest free one after
    the gateway; 400/409 when there is none."""
    net = network_of(network.cidr)
    taken = set(session.scalars(select(NetworkPort.ip).where(NetworkPort.network_id == network.id)))
    taken |= set(session.scalars(select(ServiceIP.ip).where(ServiceIP.network_id == network.id)))
    taken.add(gateway(network.cidr))
    if wanted is not None:
        try:
            address = ipaddress.IPv4Address(wanted)
        except ValueError:
            raise BadRequest(f"ip {wanted!r} is not an IPv4 address") from None
        if address not in net or address in (net.network_address, net.broadcast_address):
            raise BadRequest(f"ip {wanted} is not a host address of {network.cidr}")
        if wanted in taken:
            raise Conflict(f"ip {wanted} is already taken on network {network.name}")
        return wanted
    for address in net.hosts():
        if str(address) not in taken:
            return str(address)
    raise Conflict(f"network {network.name} ({network.cidr}) has no free address left")
