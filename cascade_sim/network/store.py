"""Bodies in the site state, named by their kind as ``site.state`` names them (``"port"``):
saving with a new revision, dropping with their allocations, taking the first free value of
a scope, the lookups across kinds, and dropping a port, which needs none of a kind's rules.

Callers hold ``site.state.lock`` around every change. Every save and drop is told to the
region's fabric (``fabric.written``), which programs the compute hosts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cascade_sim.network import fabric
from cascade_sim.region import Region
from cascade_sim.state import now_iso

Json = dict[str, Any]

# the device owners of the ports Neutron makes for itself, and of DHCP ports
ROUTER_INTERFACE = "network:router_interface"
ROUTER_GATEWAY = "network:router_gateway"
FLOATING_IP = "network:floatingip"
DHCP = "network:dhcp"
SERVICE_OWNERS = (ROUTER_INTERFACE, ROUTER_GATEWAY, FLOATING_IP)


def touch(body: Json) -> None:
    body["revision_number"] += 1
    body["updated_at"] = now_iso()


def save(site: Region, kind: str, body: Json) -> None:
    site.state.put(kind, body, body["_project_id"])
    fabric.written(site, kind, body, kept=True)


def revise(site: Region, kind: str, body: Json) -> None:
    """Save a changed body as its next revision."""
    touch(body)
    save(site, kind, body)


def drop(site: Region, kind: str, body: Json) -> None:
    """Delete a body and release whatever it had allocated."""
    site.state.delete(kind, body["id"])
    site.state.release(body["id"])
    fabric.written(site, kind, body, kept=False)


def allocate_first(site: Region, scope: str, candidates: Iterable[str], owner: str) -> str | None:
    """The first of ``candidates`` free in ``scope``, now taken for ``owner``; None if none is."""
    taken = site.state.taken(scope)
    for value in candidates:
        if value not in taken and site.state.allocate(scope, value, owner):
            return value
    return None


def ports_where(site: Region, **match: Any) -> list[Json]:
    ports = site.state.list("port")
    return [port for port in ports if all(port[key] == value for key, value in match.items())]


def subnet_bodies(site: Region, subnet_ids: list[str]) -> list[Json]:
    found = (site.state.get("subnet", subnet_id) for subnet_id in subnet_ids)
    return [subnet for subnet in found if subnet is not None]


def subnets_of(site: Region, network: Json) -> list[Json]:
    return subnet_bodies(site, network["subnets"])


def subnet_ids(port: Json) -> list[str]:
    return [fixed["subnet_id"] for fixed in port["fixed_ips"]]


def port_subnets(site: Region, port: Json) -> list[Json]:
    return subnet_bodies(site, subnet_ids(port))


def detach(fip: Json) -> None:
    """A floating IP points at no port any more."""
    fip.update(port_id=None, fixed_ip_address=None, router_id=None, status="DOWN")


def drop_port(site: Region, port: Json) -> None:
    """Delete a port: its floating IPs are disassociated, its addresses released."""
    for fip in site.state.list("floatingip"):
        if fip["port_id"] == port["id"]:
            detach(fip)
            revise(site, "floatingip", fip)
    drop(site, "port", port)
