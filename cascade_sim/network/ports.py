"""Ports: their network (one the project may use), fixed IPs and MAC, security groups and
port security, allowed address pairs, the binding that follows the host a port is plugged
into, who sees a port (its project and its network's), and the ports Neutron makes for itself
(router interfaces and gateways, floating IPs), which the port API may not delete."""

from __future__ import annotations

from cascade_sim.errors import SimError
from cascade_sim.network import checks
from cascade_sim.network.addresses import retake_ips, take_ips, take_mac
from cascade_sim.network.errors import error, forbidden
from cascade_sim.network.kinds import NAMED, SYSTEM, Actor, Attr, Json, Kind
from cascade_sim.network.networks import NETWORK, network_of
from cascade_sim.network.resources import create_resource, load
from cascade_sim.network.security_groups import SECURITY_GROUP, default_group
from cascade_sim.network.store import SERVICE_OWNERS, drop_port, revise
from cascade_sim.region import Region


def _port_visible(site: Region, actor: Actor, port: Json) -> bool:
    return actor.owns(port) or actor.owns(network_of(site, port))


def _apply_binding(port: Json) -> None:
    bound = bool(port["binding:host_id"])
    port["binding:vif_type"] = "ovs" if bound else "unbound"
    port["binding:vif_details"] = {"port_filter": True, "bridge_name": "br-int"} if bound else {}
    port["status"] = "ACTIVE" if bound and port["admin_state_up"] else "DOWN"


def rebind(site: Region, port: Json, changes: Json) -> None:
    """Plug a port into a device on a host, or unplug it: its binding and status follow, and
    it is saved as its next revision."""
    port.update(changes)
    _apply_binding(port)
    revise(site, PORT.name, port)


def port_in_use(port: Json) -> SimError:
    message = (
        f"Unable to complete operation on port {port['id']} for network "
        f"{port['network_id']}. Port already has an attached device {port['device_id']}."
    )
    return error(409, "PortInUse", message)


def _usable_network(site: Region, actor: Actor, network_id: str, project_id: str) -> Json:
    """A network ``project_id`` may plug a port into: its own or a shared one."""
    network = load(site, NETWORK, actor, network_id)
    if not (actor.admin or network["_project_id"] == project_id or network["shared"]):
        raise forbidden("rule:create_port")
    return network


def _network_owner_only(actor: Actor, network: Json, attrs: Json) -> None:
    """Choosing a MAC or an IP address is for the network's owner (and admins)."""
    chooses = "mac_address" in attrs or any("ip_address" in f for f in attrs.get("fixed_ips") or [])
    if chooses and not actor.owns(network):
        raise forbidden("rule:create_port:fixed_ips:ip_address")


def _port_groups(site: Region, port: Json, wanted: list[str] | None) -> list[str]:
    if port["device_owner"].startswith("network:"):
        return []
    if wanted is None:
        default = default_group(site, port["_project_id"])["id"]
        return [default] if port["port_security_enabled"] else []
    if wanted and not port["port_security_enabled"]:
        message = (
            "Port security must be enabled and port must have an IP address in order to use "
            "security groups."
        )
        raise error(409, "PortSecurityAndIPRequiredForSecurityGroups", message)
    for group_id in wanted:
        group = site.state.get("security_group", group_id)
        if group is None or group["_project_id"] != port["_project_id"]:
            raise SECURITY_GROUP.missing(group_id)
    return list(dict.fromkeys(wanted))


def _check_pairs(port: Json) -> None:
    if port["allowed_address_pairs"] and not port["port_security_enabled"]:
        message = "Port Security must be enabled in order to have allowed address pairs on a port."
        raise error(409, "AddressPairAndPortSecurityRequired", message)
    for pair in port["allowed_address_pairs"]:
        pair.setdefault("mac_address", port["mac_address"])


def _build_port(site: Region, actor: Actor, attrs: Json, port: Json) -> None:
    network = _usable_network(site, actor, port["network_id"], port["_project_id"])
    _network_owner_only(actor, network, attrs)
    port["mac_address"] = take_mac(site, port, network)
    port["fixed_ips"] = take_ips(site, network, port["id"], port["fixed_ips"])
    if port["port_security_enabled"] is None:
        port["port_security_enabled"] = network["port_security_enabled"]
    port["security_groups"] = _port_groups(site, port, port["security_groups"])
    _check_pairs(port)
    _apply_binding(port)


def _change_port(site: Region, actor: Actor, port: Json, attrs: Json) -> None:
    """Checks everything first; the fixed IPs, whose allocations change, come last."""
    network = network_of(site, port)
    _network_owner_only(actor, network, attrs)
    disables = attrs.get("port_security_enabled") is False and "security_groups" not in attrs
    if disables and port["security_groups"]:
        message = (
            "Port has security group associated. Cannot disable port security or ip address "
            "until security group is removed"
        )
        raise error(409, "PortSecurityPortHasSecurityGroup", message)
    changed = {**port, **{k: v for k, v in attrs.items() if k != "security_groups"}}
    if "security_groups" in attrs:
        changed["security_groups"] = _port_groups(site, changed, attrs["security_groups"])
    _check_pairs(changed)
    if "fixed_ips" in attrs:
        changed["fixed_ips"] = retake_ips(site, network, port, attrs["fixed_ips"])
    _apply_binding(changed)
    port.update(changed)


def _remove_port(site: Region, _actor: Actor, port: Json) -> None:
    if port["device_owner"] in SERVICE_OWNERS:
        message = (
            f"Port {port['id']} cannot be deleted directly via the port API: "
            f"has device owner {port['device_owner']}."
        )
        raise error(409, "ServicePortInUse", message)
    drop_port(site, port)


def internal_port(
    site: Region,
    network: Json,
    project_id: str,
    device_owner: str,
    device_id: str,
    fixed: list[Json] | None,
) -> Json:
    """A port Neutron makes for itself (router interface or gateway, floating IP)."""
    attrs = {
        "network_id": network["id"],
        "device_owner": device_owner,
        "device_id": device_id,
        "binding:host_id": site.hosts[0].name,
        "fixed_ips": fixed,
    }
    return create_resource(site, PORT, SYSTEM, attrs, project_id)


PORT = Kind(
    "port",
    "ports",
    "Port",
    "Port",
    {
        **NAMED,
        "network_id": Attr(checks.uuid, put=False, required=True),
        "admin_state_up": Attr(checks.boolean, True),
        "mac_address": Attr(checks.mac, None, put=False),
        "fixed_ips": Attr(checks.list_of(checks.FIXED_IP), None),
        "device_id": Attr(checks.text(), ""),
        "device_owner": Attr(checks.text(), ""),
        "binding:host_id": Attr(checks.text(), "", admin_write=True, admin_read=True),
        "binding:profile": Attr(checks.dictionary, {}, admin_write=True, admin_read=True),
        "binding:vnic_type": Attr(
            checks.choice("normal", "direct", "macvtap", "baremetal"), "normal"
        ),
        "binding:vif_type": Attr(admin_read=True),
        "binding:vif_details": Attr(admin_read=True),
        "allowed_address_pairs": Attr(
            checks.list_of(
                checks.record({"ip_address": checks.prefix}, {"mac_address": checks.mac})
            ),
            [],
        ),
        "security_groups": Attr(checks.nullable(checks.list_of(checks.uuid)), None),
        "port_security_enabled": Attr(checks.boolean, None),
        "status": Attr(),
    },
    build=_build_port,
    change=_change_port,
    remove=_remove_port,
    visible=_port_visible,
)
