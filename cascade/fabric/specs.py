"""What a caller asks the goal store for: a local port (``PortSpec``) or a remote one
(``RemotePortSpec``), and the checks their fields pass before anything is stored.

Imports only ``cascade.errors``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cascade.errors import BadRequest

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


def allowed_ips(values: Iterable[str]) -> list[str]:
    """Allowed addresses checked, without duplicates, in a stable order."""
    found = sorted(set(values))
    for value in found:
        check_ip(value, "allowed ip")
    return found
