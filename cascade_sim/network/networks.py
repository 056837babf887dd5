"""Networks: provider attributes (a VNI, a VLAN per physical network, or a flat physical
network, each unique on the site), the MTU each type allows, who sees a network (its project,
or everyone when it is shared or external), and removal with its subnets and DHCP ports."""

from __future__ import annotations

from cascade_sim.errors import SimError
from cascade_sim.network import checks
from cascade_sim.network.errors import bad, error, invalid
from cascade_sim.network.kinds import NAMED, Actor, Attr, Json, Kind
from cascade_sim.network.resources import load
from cascade_sim.network.store import (
    DHCP,
    allocate_first,
    drop,
    drop_port,
    ports_where,
    subnets_of,
)
from cascade_sim.region import Region

# network type -> (lowest segmentation id, highest, default MTU); flat networks have none
SEGMENTS = {"vxlan": (1, 16777215, 1450), "vlan": (1, 4094, 1500), "flat": (0, 0, 1500)}


def _segment_in_use(network_type: str, physnet: str | None, value: int) -> SimError:
    if network_type == "vxlan":
        message = f"Unable to create the network. The tunnel ID {value} is in use."
        return error(409, "TunnelIdInUse", message)
    if network_type == "vlan":
        message = (
            f"Unable to create the network. The VLAN {value} on physical network "
            f"{physnet} is in use."
        )
        return error(409, "VlanIdInUse", message)
    message = f"Unable to create the flat network. Physical network {physnet} is in use."
    return error(409, "FlatNetworkInUse", message)


def _free_segment(site: Region, scope: str, low: int, high: int, owner: str) -> int:
    found = allocate_first(site, scope, (str(value) for value in range(low, high + 1)), owner)
    if found is None:
        message = "Unable to create the network. No tenant network is available for allocation."
        raise error(503, "NoNetworkAvailable", message)
    return int(found)


def _take_segment(site: Region, network: Json) -> None:
    """Sets the provider attributes: a VNI (scope ``vni``), a VLAN per physical network, or
    the physical network itself for a flat network, each unique on the site."""
    network_type = network["provider:network_type"] or "vxlan"
    physnet, wanted = network["provider:physical_network"], network["provider:segmentation_id"]
    low, high, _mtu = SEGMENTS[network_type]
    if network_type == "vxlan" and physnet is not None:
        raise invalid("provider:physical_network", "a vxlan network has no physical network")
    if network_type == "flat" and wanted is not None:
        raise invalid("provider:segmentation_id", "a flat network has no segmentation id")
    if wanted is not None and not low <= wanted <= high:
        raise invalid("provider:segmentation_id", f"{wanted} is not in {low}..{high}")
    physnet = None if network_type == "vxlan" else physnet or "physnet1"
    scope = "vni" if network_type == "vxlan" else f"{network_type}:{physnet}"
    if wanted is None:
        wanted = _free_segment(site, scope, low, high, network["id"])
    elif not site.state.allocate(scope, str(wanted), network["id"]):
        raise _segment_in_use(network_type, physnet, wanted)
    network.update(
        {
            "provider:network_type": network_type,
            "provider:physical_network": physnet,
            "provider:segmentation_id": None if network_type == "flat" else wanted,
        }
    )


def _check_mtu(network: Json) -> None:
    largest = SEGMENTS[network["provider:network_type"]][2]
    if network["mtu"] is None:
        network["mtu"] = largest
    elif network["mtu"] > largest:
        raise invalid("mtu", f"Requested MTU is too big, maximum is {largest}")


def _build_network(site: Region, _actor: Actor, _attrs: Json, network: Json) -> None:
    _take_segment(site, network)
    _check_mtu(network)
    network.update(status="ACTIVE", subnets=[], availability_zones=["nova"])


def _change_network(_site: Region, _actor: Actor, network: Json, attrs: Json) -> None:
    network.update(attrs)
    _check_mtu(network)


def _network_visible(_site: Region, actor: Actor, network: Json) -> bool:
    return actor.owns(network) or bool(network["shared"] or network["router:external"])


def _remove_network(site: Region, _actor: Actor, network: Json) -> None:
    ports = ports_where(site, network_id=network["id"])
    if any(port["device_owner"] != DHCP for port in ports):
        message = (
            f"Unable to complete operation on network {network['id']}. "
            "There are one or more ports still in use on the network."
        )
        raise error(409, "NetworkInUse", message)
    for port in ports:
        drop_port(site, port)
    for subnet in subnets_of(site, network):
        drop(site, "subnet", subnet)
    drop(site, NETWORK.name, network)


def network_of(site: Region, body: Json) -> Json:
    """The network of a subnet or port."""
    network = site.state.get("network", body["network_id"])
    if network is None:
        raise NETWORK.missing(body["network_id"])
    return network


def external_network(site: Region, actor: Actor, network_id: str, request: str) -> Json:
    """The network a router's gateway or a floating IP (``request``) is taken from."""
    network = load(site, NETWORK, actor, network_id)
    if not network["router:external"]:
        message = f"Bad {request} request: Network {network['id']} is not a valid external network."
        raise bad(message, "BadRequest")
    return network


NETWORK = Kind(
    "network",
    "networks",
    "Network",
    "Network",
    {
        **NAMED,
        "admin_state_up": Attr(checks.boolean, True),
        "shared": Attr(checks.boolean, False, admin_write=True),
        "router:external": Attr(checks.boolean, False, admin_write=True),
        "provider:network_type": Attr(
            checks.choice(*SEGMENTS), None, put=False, admin_write=True, admin_read=True
        ),
        "provider:physical_network": Attr(
            checks.nullable(checks.text(32)), None, put=False, admin_write=True, admin_read=True
        ),
        "provider:segmentation_id": Attr(
            checks.nullable(checks.integer(1, 16777215)),
            None,
            put=False,
            admin_write=True,
            admin_read=True,
        ),
        "mtu": Attr(checks.integer(68, 9000), None),
        "port_security_enabled": Attr(checks.boolean, True),
        "availability_zone_hints": Attr(checks.list_of(checks.text()), [], put=False),
        "availability_zones": Attr(),
        "status": Attr(),
        "subnets": Attr(),
    },
    build=_build_network,
    change=_change_network,
    remove=_remove_network,
    visible=_network_visible,
)
