"""What the compute service (Nova) calls to plug its servers in: a port made for a server,
a user's port bound to one, a gone server's ports deleted or unplugged, a server's ports and
their networks' names."""

from __future__ import annotations

from typing import Any

from cascade_sim.common import public
from cascade_sim.network.kinds import Actor
from cascade_sim.network.networks import NETWORK
from cascade_sim.network.ports import PORT, port_in_use, rebind
from cascade_sim.network.resources import create_resource
from cascade_sim.network.store import drop_port, ports_where
from cascade_sim.region import Region


def create_port(
    site: Region,
    project_id: str,
    network_id: str,
    *,
    device_id: str,
    device_owner: str,
    host: str,
    name: str = "",
) -> dict[str, Any]:
    """A port Nova makes for a server on a network the project may use (404 otherwise)."""
    attrs = {
        "network_id": network_id,
        "name": name,
        "device_id": device_id,
        "device_owner": device_owner,
        "binding:host_id": host,
        "_created_by": "nova",
    }
    return public(create_resource(site, PORT, Actor(project_id), attrs, project_id))


def bind_port(
    site: Region,
    port_id: str,
    *,
    project_id: str | None,
    device_id: str,
    device_owner: str,
    host: str,
) -> dict[str, Any]:
    """Plug a port the user created (of ``project_id``, any when None) into a server."""
    with site.state.lock:
        port = site.state.get("port", port_id)
        if port is None or project_id not in (None, port["_project_id"]):
            raise PORT.missing(port_id)
        if port["device_id"] not in ("", device_id):
            raise port_in_use(port)
        plugged = {"device_id": device_id, "device_owner": device_owner, "binding:host_id": host}
        rebind(site, port, plugged)
    return public(port)


def unbind_ports(site: Region, device_id: str) -> None:
    """A server is gone: delete the ports Nova made for it, unplug the others."""
    with site.state.lock:
        for port in ports_where(site, device_id=device_id):
            if port.get("_created_by") == "nova":
                drop_port(site, port)
                continue
            unplugged = {"device_id": "", "device_owner": "", "binding:host_id": ""}
            rebind(site, port, {**unplugged, "binding:profile": {}})


def ports_of(site: Region, device_id: str) -> list[dict[str, Any]]:
    return [public(port) for port in ports_where(site, device_id=device_id)]


def usable_networks(site: Region, project_id: str) -> list[str]:
    """Ids of the networks Nova may plug a server of the project into without being told
    which: the project's own and the shared ones (not external ones), as Nova's
    ``_get_available_networks`` finds them."""
    return sorted(
        str(network["id"])
        for network in site.state.list("network")
        if (network["_project_id"] == project_id or network["shared"])
        and not network["router:external"]
    )


def network_name(site: Region, network_id: str) -> str:
    network = site.state.get("network", network_id)
    if network is None:
        raise NETWORK.missing(network_id)
    return str(network["name"])
