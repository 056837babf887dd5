"""What a caller asks the goal store for: a local port (``PortSpec``) or a remote one
(``RemotePortSpec``), the checks their fields pass before anything is stored, and how a
port becomes a row and a stored local port a spec again.

Imports only ``cascade.errors``, ``cascade.db.models`` (``utcnow``) and the dataplane's
values (``dataplane.base``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row

from cascade.db.models import utcnow
from cascade.errors import BadRequest
from cascade.fabric.dataplane.base import Route

MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True)
class PortSpec:
    id: str
    network_id: str
    host: str
    mac: str
    ip: str  # address without prefix
    security_rules: tuple[dict[str, Any], ...] = ()
    port_security: bool = False
    # Neutron's allowed address pairs: addresses the port may also send from, announced as
    # the port's at its MAC (a service IP it holds)
    allowed_ips: tuple[str, ...] = ()
    router: str | None = None  # a router's interface (``LocalPort.router``)
    gateway: str | None = None  # a VM's default gateway
    routes: tuple[Route, ...] = ()  # a router interface's: its router's extra routes


@dataclass(frozen=True)
class RemotePortSpec:
    """A port at another site: a neighbour at ``vtep``, the tunnel endpoint of its host
    there (Neutron's ``binding:profile.tunnel_ip`` of a virtual remote port), with its
    allowed addresses pointed there too."""

    id: str
    network_id: str
    mac: str
    ip: str  # address without prefix
    vtep: str
    allowed_ips: tuple[str, ...] = ()


def check_address(spec: PortSpec | RemotePortSpec, cidr: str) -> None:
    if not MAC.match(spec.mac):
        raise BadRequest(
            f"mac {spec.mac!r} must be six lower-case hex pairs like 02:00:00:00:00:01"
        )
    try:
        address = ipaddress.ip_address(spec.ip)
    except ValueError:
        raise BadRequest(f"ip {spec.ip!r} is not an IP address") from None
    if address not in ipaddress.ip_network(cidr):
        raise BadRequest(f"ip {spec.ip} is outside network {spec.network_id}'s {cidr}")


def check_ip(value: str, name: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise BadRequest(f"{name} {value!r} is not an IP address") from None


def check_routing(gateway: str | None, routes: Iterable[Route]) -> list[list[str]]:
    """A port's gateway and routes checked; the routes as stored (sorted, no duplicates)."""
    if gateway is not None:
        check_ip(gateway, "gateway")
    found = sorted({(str(destination), str(nexthop)) for destination, nexthop in routes})
    for destination, nexthop in found:
        try:
            ipaddress.ip_network(destination)
        except ValueError:
            raise BadRequest(f"route destination {destination!r} is not a network") from None
        check_ip(nexthop, "route nexthop")
    return [list(route) for route in found]


def allowed_ips(values: Iterable[str]) -> list[str]:
    """Allowed addresses checked, without duplicates, in a stable order."""
    found = sorted(set(values))
    for value in found:
        check_ip(value, "allowed ip")
    return found


def row(spec: PortSpec | RemotePortSpec, **kind: Any) -> dict[str, Any]:
    """A port's row: what every port has, and what its kind adds (``kind``)."""
    common = {"id": spec.id, "network_id": spec.network_id, "mac": spec.mac, "ip": spec.ip}
    allowed = allowed_ips(spec.allowed_ips) or None
    return {**common, "allowed_ips": allowed, "created_at": utcnow(), **kind}


def stored_local(port: Row[Any], **changed: Any) -> PortSpec:
    """A stored local port as asked for, with ``changed`` fields."""
    stored: dict[str, Any] = {
        "security_rules": tuple(port.security_rules),
        "port_security": bool(port.port_security),
        "allowed_ips": tuple(port.allowed_ips or ()),
        "router": port.router,
        "gateway": port.gateway,
        "routes": tuple((d, n) for d, n in port.routes or ()),
    }
    return PortSpec(port.id, port.network_id, port.host, port.mac, port.ip, **(stored | changed))
