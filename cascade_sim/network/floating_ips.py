"""Floating IPs: an address taken on an external network through a port Neutron makes for
itself, and its association with a fixed IP of a port of the same project, reached through a
router whose gateway is on that external network."""

from __future__ import annotations

import ipaddress

from cascade_sim.network import checks
from cascade_sim.network.errors import bad, error
from cascade_sim.network.kinds import STANDARD, Actor, Attr, Json, Kind
from cascade_sim.network.l3 import interfaces
from cascade_sim.network.networks import external_network
from cascade_sim.network.ports import PORT, internal_port
from cascade_sim.network.resources import load
from cascade_sim.network.store import (
    FLOATING_IP,
    detach,
    drop,
    ports_where,
    subnet_ids,
    subnets_of,
)
from cascade_sim.region import Region


def _fixed_address(port: Json, wanted: str | None) -> Json:
    for fixed in port["fixed_ips"]:
        version = ipaddress.ip_address(fixed["ip_address"]).version
        if fixed["ip_address"] == wanted or (wanted is None and version == 4):
            return dict(fixed)
    if wanted is not None:
        raise bad(f"Port {port['id']} does not have fixed ip {wanted}", "BadRequest")
    message = f"Bad floatingip request: Port {port['id']} does not have any IPv4 address."
    raise bad(message, "BadRequest")


def _router_towards(site: Region, fip: Json, subnet_id: str, port_id: str) -> str:
    for router in site.state.list("router"):
        gateway = router["external_gateway_info"]
        towards = gateway is not None and gateway["network_id"] == fip["floating_network_id"]
        if towards and any(subnet_id in subnet_ids(p) for p in interfaces(site, router["id"])):
            return str(router["id"])
    message = (
        f"External network {fip['floating_network_id']} is not reachable from subnet "
        f"{subnet_id}.  Therefore, cannot associate Port {port_id} with a Floating IP."
    )
    raise error(404, "ExternalGatewayForFloatingIPNotFound", message)


def _check_fixed_free(site: Region, fip: Json, port_id: str, address: str) -> None:
    for other in site.state.list("floatingip"):
        if other["id"] != fip["id"] and (other["port_id"], other["fixed_ip_address"]) == (
            port_id,
            address,
        ):
            message = (
                f"Cannot associate floating IP {fip['floating_ip_address']} ({fip['id']}) with "
                f"port {port_id} using fixed IP {address}, as that fixed IP already has a "
                f"floating IP on external network {other['floating_network_id']}."
            )
            raise error(409, "FloatingIPPortAlreadyAssociated", message)


def _associate(
    site: Region, actor: Actor, fip: Json, port_id: str | None, address: str | None
) -> None:
    """Point the floating IP at a port's fixed IP through a router (or at nothing)."""
    if port_id is None:
        if address is not None:
            raise bad("fixed_ip_address cannot be specified without a port_id", "BadRequest")
        detach(fip)
        return
    port = load(site, PORT, actor, port_id)
    if port["_project_id"] != fip["_project_id"]:
        message = (
            f"Cannot create floating IP and bind it to Port {port_id}, since that port is owned "
            "by a different tenant."
        )
        raise bad(message, "BadRequest")
    fixed = _fixed_address(port, address)
    _check_fixed_free(site, fip, port_id, fixed["ip_address"])
    router_id = _router_towards(site, fip, fixed["subnet_id"], port_id)
    fip.update(port_id=port_id, fixed_ip_address=fixed["ip_address"], router_id=router_id)
    fip["status"] = "ACTIVE"


def _floating_request(site: Region, network: Json, fip: Json) -> list[Json]:
    wanted = {"subnet_id": fip["subnet_id"], "ip_address": fip["floating_ip_address"]}
    wanted = {key: value for key, value in wanted.items() if value is not None}
    if wanted:
        return [wanted]
    for subnet in subnets_of(site, network):
        if subnet["ip_version"] == 4:
            return [{"subnet_id": subnet["id"]}]
    message = f"Bad floatingip request: Network {network['id']} has no IPv4 subnet."
    raise bad(message, "BadRequest")


def _build_fip(site: Region, actor: Actor, _attrs: Json, fip: Json) -> None:
    network = external_network(site, actor, fip["floating_network_id"], "floatingip")
    _associate(site, actor, fip, fip["port_id"], fip["fixed_ip_address"])
    port = internal_port(
        site, network, "", FLOATING_IP, fip["id"], _floating_request(site, network, fip)
    )
    fixed = port["fixed_ips"][0]
    fip.update(subnet_id=fixed["subnet_id"], floating_ip_address=fixed["ip_address"])


def _change_fip(site: Region, actor: Actor, fip: Json, attrs: Json) -> None:
    if "port_id" in attrs or "fixed_ip_address" in attrs:
        port_id = attrs.get("port_id", fip["port_id"])
        _associate(site, actor, fip, port_id, attrs.get("fixed_ip_address"))
    fip["description"] = attrs.get("description", fip["description"])


def _remove_fip(site: Region, _actor: Actor, fip: Json) -> None:
    for port in ports_where(site, device_id=fip["id"], device_owner=FLOATING_IP):
        drop(site, PORT.name, port)
    drop(site, FLOATINGIP.name, fip)


FLOATINGIP = Kind(
    "floatingip",
    "floatingips",
    "Floating IP",
    "FloatingIP",
    {
        **STANDARD,
        "floating_network_id": Attr(checks.uuid, put=False, required=True),
        "subnet_id": Attr(checks.uuid, None, put=False),
        "floating_ip_address": Attr(checks.ip, None, put=False, admin_write=True),
        "port_id": Attr(checks.nullable(checks.uuid), None),
        "fixed_ip_address": Attr(checks.nullable(checks.ip), None),
        "router_id": Attr(),
        "status": Attr(),
    },
    build=_build_fip,
    change=_change_fip,
    remove=_remove_fip,
)
