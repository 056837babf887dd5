"""Routers (Neutron's L3): the external gateway and its port, interfaces on subnets or on
existing ports, extra routes through connected subnets, and what keeps a gateway, an
interface or a router in use (floating IPs, routes, interfaces)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from cascade_sim.errors import SimError
from cascade_sim.network import checks
from cascade_sim.network.errors import bad, error, forbidden
from cascade_sim.network.kinds import NAMED, Actor, Attr, Json, Kind
from cascade_sim.network.networks import external_network, network_of
from cascade_sim.network.ports import PORT, internal_port, port_in_use, rebind
from cascade_sim.network.resources import load, writable
from cascade_sim.network.store import (
    ROUTER_GATEWAY,
    ROUTER_INTERFACE,
    drop,
    drop_port,
    port_subnets,
    ports_where,
    revise,
    subnet_ids,
)
from cascade_sim.network.subnets import SUBNET
from cascade_sim.region import Region


def interfaces(site: Region, router_id: str) -> list[Json]:
    return ports_where(site, device_id=router_id, device_owner=ROUTER_INTERFACE)


def _gateway_ports(site: Region, router_id: str) -> list[Json]:
    return ports_where(site, device_id=router_id, device_owner=ROUTER_GATEWAY)


def _router_subnets(site: Region, router_id: str) -> list[Json]:
    ports = interfaces(site, router_id) + _gateway_ports(site, router_id)
    return [subnet for port in ports for subnet in port_subnets(site, port)]


# -- the external gateway --------------------------------------------------------------------


def _gateway_in_use(site: Region, router: Json) -> None:
    if any(fip["router_id"] == router["id"] for fip in site.state.list("floatingip")):
        message = (
            f"Gateway cannot be updated for router {router['id']}, since a gateway to external "
            "network is required by one or more floating IPs."
        )
        raise error(409, "RouterExternalGatewayInUseByFloatingIp", message)


def _new_gateway(site: Region, actor: Actor, router: Json, info: Json) -> Json:
    network = external_network(site, actor, info["network_id"], "router")
    fixed = info.get("external_fixed_ips")
    port = internal_port(site, network, "", ROUTER_GATEWAY, router["id"], fixed)
    return {
        "network_id": network["id"],
        "enable_snat": info.get("enable_snat", True),
        "external_fixed_ips": port["fixed_ips"],
    }


def _set_gateway(site: Region, actor: Actor, router: Json, info: Json | None) -> None:
    current = router["external_gateway_info"]
    if info and not actor.admin and {"enable_snat", "external_fixed_ips"} & set(info):
        raise forbidden("rule:update_router:external_gateway_info:external_fixed_ips")
    keeps_port = info and "external_fixed_ips" not in info
    if current and info and keeps_port and info["network_id"] == current["network_id"]:
        current["enable_snat"] = info.get("enable_snat", current["enable_snat"])
        return
    if current:
        _gateway_in_use(site, router)
    previous = _gateway_ports(site, router["id"])
    router["external_gateway_info"] = _new_gateway(site, actor, router, info) if info else None
    for port in previous:
        drop_port(site, port)


# -- the router ------------------------------------------------------------------------------


def _check_routes(site: Region, router: Json, routes: list[Json]) -> list[Json]:
    connected = [ipaddress.ip_network(s["cidr"]) for s in _router_subnets(site, router["id"])]
    for route in routes:
        if not any(ipaddress.ip_address(route["nexthop"]) in cidr for cidr in connected):
            message = (
                f"Invalid format for routes: {route}, the nexthop is not connected with router"
            )
            raise bad(message, "InvalidRoutes")
    return [dict(pair) for pair in dict.fromkeys(tuple(sorted(r.items())) for r in routes)]


def _build_router(site: Region, actor: Actor, _attrs: Json, router: Json) -> None:
    router["status"] = "ACTIVE"
    info, router["external_gateway_info"] = router["external_gateway_info"], None
    _set_gateway(site, actor, router, info)


def _change_router(site: Region, actor: Actor, router: Json, attrs: Json) -> None:
    if "routes" in attrs:
        router["routes"] = _check_routes(site, router, attrs["routes"])
    if "external_gateway_info" in attrs:
        _set_gateway(site, actor, router, attrs["external_gateway_info"])
    router.update({k: v for k, v in attrs.items() if k not in ("external_gateway_info", "routes")})


def _remove_router(site: Region, _actor: Actor, router: Json) -> None:
    if interfaces(site, router["id"]):
        raise error(409, "RouterInUse", f"Router {router['id']} still has ports")
    for port in _gateway_ports(site, router["id"]):
        drop_port(site, port)
    drop(site, ROUTER.name, router)


# -- interfaces ------------------------------------------------------------------------------


def _interface_request(raw: Any, adding: bool) -> Json:
    keys = {"subnet_id", "port_id"}
    if not isinstance(raw, dict) or not raw or set(raw) - keys:
        raise bad("Either subnet_id or port_id must be specified")
    if adding and set(raw) == keys:
        raise bad("Cannot specify both subnet-id and port-id")
    return {key: checks.uuid(key, value) for key, value in raw.items()}


def _check_router_subnets(site: Region, router: Json, subnets: list[Json]) -> None:
    attached = [s for p in interfaces(site, router["id"]) for s in port_subnets(site, p)]
    for subnet in subnets:
        for other in attached:
            if other["id"] == subnet["id"]:
                raise bad(f"Router already has a port on subnet {subnet['id']}.", "BadRequest")
            if ipaddress.ip_network(subnet["cidr"]).overlaps(ipaddress.ip_network(other["cidr"])):
                message = (
                    f"Bad router request: Cidr {subnet['cidr']} of subnet {subnet['id']} "
                    f"overlaps with cidr {other['cidr']} of subnet {other['id']}."
                )
                raise bad(message, "BadRequest")


def _interface_on_subnet(site: Region, actor: Actor, router: Json, subnet_id: str) -> Json:
    subnet = load(site, SUBNET, actor, subnet_id)
    if not subnet["gateway_ip"]:
        message = "Bad router request: Subnet for router interface must have a gateway IP."
        raise bad(message, "BadRequest")
    _check_router_subnets(site, router, [subnet])
    fixed = [{"subnet_id": subnet["id"], "ip_address": subnet["gateway_ip"]}]
    network = network_of(site, subnet)
    return internal_port(
        site, network, router["_project_id"], ROUTER_INTERFACE, router["id"], fixed
    )


def _interface_on_port(site: Region, actor: Actor, router: Json, port_id: str) -> Json:
    port = writable(site, PORT, actor, port_id)
    if port["device_id"] or port["device_owner"]:
        raise port_in_use(port)
    if not port["fixed_ips"]:
        raise bad("Bad router request: Router port must have at least one fixed IP.", "BadRequest")
    _check_router_subnets(site, router, port_subnets(site, port))
    plugged = {"device_id": router["id"], "device_owner": ROUTER_INTERFACE, "security_groups": []}
    rebind(site, port, {**plugged, "binding:host_id": site.hosts[0].name})
    return port


def _find_interface(site: Region, router: Json, wanted: Json) -> Json:
    ports = interfaces(site, router["id"])
    if "port_id" not in wanted:
        for port in ports:
            if wanted["subnet_id"] in subnet_ids(port):
                return port
        message = f"Router {router['id']} has no interface on subnet {wanted['subnet_id']}"
        raise error(404, "RouterInterfaceNotFoundForSubnet", message)
    for port in ports:
        if port["id"] == wanted["port_id"]:
            if wanted.get("subnet_id", subnet_ids(port)[0]) not in subnet_ids(port):
                message = f"Subnet {wanted['subnet_id']} does not match with the port {port['id']}"
                raise bad(message, "SubnetMismatchForPort")
            return port
    message = f"Router {router['id']} does not have an interface with id {wanted['port_id']}"
    raise error(404, "RouterInterfaceNotFound", message)


def _interface_needed(router: Json, subnet: Json, by: str, neutron_type: str) -> SimError:
    message = (
        f"Router interface for subnet {subnet['id']} on router {router['id']} cannot be "
        f"deleted, as it is required by one or more {by}."
    )
    return error(409, neutron_type, message)


def _check_interface_unused(site: Region, router: Json, port: Json) -> None:
    for subnet in port_subnets(site, port):
        cidr = ipaddress.ip_network(subnet["cidr"])
        fips = [f for f in site.state.list("floatingip") if f["router_id"] == router["id"]]
        if any(ipaddress.ip_address(f["fixed_ip_address"]) in cidr for f in fips):
            raise _interface_needed(
                router, subnet, "floating IPs", "RouterInterfaceInUseByFloatingIP"
            )
        if any(ipaddress.ip_address(r["nexthop"]) in cidr for r in router["routes"]):
            raise _interface_needed(router, subnet, "routes", "RouterInterfaceInUseByRoute")


def _attach_interface(site: Region, actor: Actor, router: Json, wanted: Json) -> Json:
    if "port_id" in wanted:
        return _interface_on_port(site, actor, router, wanted["port_id"])
    return _interface_on_subnet(site, actor, router, wanted["subnet_id"])


def _detach_interface(site: Region, _actor: Actor, router: Json, wanted: Json) -> Json:
    port = _find_interface(site, router, wanted)
    _check_interface_unused(site, router, port)
    drop_port(site, port)
    return port


def _interface_view(router: Json, port: Json) -> Json:
    ids = subnet_ids(port)
    return {
        "id": router["id"],
        "network_id": port["network_id"],
        "port_id": port["id"],
        "subnet_id": ids[0] if ids else None,
        "subnet_ids": ids,
        "project_id": router["project_id"],
        "tenant_id": router["project_id"],
        "tags": router["tags"],
    }


def _edit_interfaces(
    site: Region,
    actor: Actor,
    router_id: str,
    wanted: Json,
    edit: Callable[[Region, Actor, Json, Json], Json],
) -> Json:
    with site.state.lock:
        router = writable(site, ROUTER, actor, router_id)
        port = edit(site, actor, router, wanted)
        revise(site, ROUTER.name, router)
    return _interface_view(router, port)


def add_interface(site: Region, actor: Actor, router_id: str, raw: Any) -> Json:
    """``add_router_interface``: a new port on a subnet (its gateway IP) or an existing port."""
    wanted = _interface_request(raw, adding=True)
    return _edit_interfaces(site, actor, router_id, wanted, _attach_interface)


def remove_interface(site: Region, actor: Actor, router_id: str, raw: Any) -> Json:
    """``remove_router_interface``: by port, by subnet or both; the port is deleted."""
    wanted = _interface_request(raw, adding=False)
    return _edit_interfaces(site, actor, router_id, wanted, _detach_interface)


ROUTER = Kind(
    "router",
    "routers",
    "Router",
    "Router",
    {
        **NAMED,
        "admin_state_up": Attr(checks.boolean, True),
        "external_gateway_info": Attr(
            checks.nullable(
                checks.record(
                    {"network_id": checks.uuid},
                    {
                        "enable_snat": checks.boolean,
                        "external_fixed_ips": checks.list_of(checks.FIXED_IP),
                    },
                )
            ),
            None,
        ),
        "routes": Attr(checks.list_of(checks.ROUTE), [], post=False),
        "status": Attr(),
    },
    build=_build_router,
    change=_change_router,
    remove=_remove_router,
)
