"""What the server routes share: the state table, timed transitions applied on read,
loading, rendering, and attaching a volume."""

from __future__ import annotations

import time
from typing import Any

from cascade.identity import AuthContext
from cascade_sim import network, volume
from cascade_sim.common import found, public
from cascade_sim.compute import flavors as flavor_catalog
from cascade_sim.errors import SimError
from cascade_sim.microversions import Microversion
from cascade_sim.region import Region
from cascade_sim.state import now_iso

STATES: dict[str, tuple[str, int]] = {  # status -> (vm_state, power_state)
    "BUILD": ("building", 0),
    "ACTIVE": ("active", 1),
    "REBOOT": ("active", 1),
    "HARD_REBOOT": ("active", 1),
    "PAUSED": ("paused", 3),
    "SUSPENDED": ("suspended", 4),
    "SHUTOFF": ("stopped", 4),
    "ERROR": ("error", 0),
}


def apply_pending(site: Region, server: dict[str, Any]) -> dict[str, Any]:
    """Carry a due transition into the stored server (lazily, on read)."""
    pending = server.get("_pending")
    if pending and time.time() >= pending["due"]:
        set_status(server, pending["status"], None)
        server["_pending"] = None
        server["updated"] = now_iso()
        if pending["status"] == "ACTIVE" and not server.get("OS-SRV-USG:launched_at"):
            server["OS-SRV-USG:launched_at"] = now_iso().rstrip("Z") + ".000000"
        site.state.put("server", server, server["_project_id"])
    return server


def set_status(server: dict[str, Any], status: str, task: str | None) -> None:
    vm_state, power = STATES[status]
    server.update(
        {
            "status": status,
            "OS-EXT-STS:vm_state": vm_state,
            "OS-EXT-STS:task_state": task,
            "OS-EXT-STS:power_state": power,
        }
    )


def schedule(server: dict[str, Any], status: str, seconds: float) -> None:
    server["_pending"] = {"status": status, "due": time.time() + seconds}


def load(site: Region, caller: AuthContext, server_id: str) -> dict[str, Any]:
    return apply_pending(site, found(site, caller, "server", server_id, "Instance"))


def render(site: Region, server: dict[str, Any], mv: Microversion, base: str) -> dict[str, Any]:
    body = public(server)
    addresses: dict[str, list[dict[str, Any]]] = {}
    for port in network.ports_of(site, server["id"]):
        name = network.network_name(site, port["network_id"])
        for fixed in port["fixed_ips"]:
            addresses.setdefault(name, []).append(
                {
                    "version": 6 if ":" in fixed["ip_address"] else 4,
                    "addr": fixed["ip_address"],
                    "OS-EXT-IPS:type": "fixed",
                    "OS-EXT-IPS-MAC:mac_addr": port["mac_address"],
                }
            )
    body["addresses"] = addresses
    flavor = server["_flavor"]
    body["flavor"] = (
        flavor_catalog.embedded(flavor)
        if mv >= Microversion(2, 47)
        else {"id": flavor["id"], "links": []}
    )
    body["links"] = links(server, base)
    return body


def links(server: dict[str, Any], base: str) -> list[dict[str, str]]:
    return [{"rel": "self", "href": f"{base}/compute/v2.1/servers/{server['id']}"}]


def servers_per_host(site: Region) -> dict[str, int]:
    """How many servers each of the site's hosts runs."""
    load = {host.name: 0 for host in site.hosts}
    for server in site.state.list("server"):
        load[server["_host"]] = load.get(server["_host"], 0) + 1
    return load


def place(site: Region) -> str:
    """The host with the fewest servers (the scheduler of a small region)."""
    load = servers_per_host(site)
    return min(load, key=lambda name: (load[name], name))


def attach_volume(
    site: Region,
    server: dict[str, Any],
    volume_id: str,
    device: str,
    project: str | None,
    delete_on_termination: bool = False,
) -> dict[str, Any]:
    attachment = volume.attach_volume(
        site,
        volume_id,
        server_id=server["id"],
        host=server["_host"],
        device=device,
        project_id=project,
    )
    server["os-extended-volumes:volumes_attached"].append(
        {"id": volume_id, "delete_on_termination": delete_on_termination}
    )
    server.setdefault("_devices", {})[volume_id] = device
    site.state.put("server", server, server["_project_id"])
    return attachment


def device_of(server: dict[str, Any], volume_id: str) -> str:
    """The device name a volume was attached as."""
    devices: dict[str, str] = server.get("_devices", {})
    return devices.get(volume_id, "")


def next_device(server: dict[str, Any], wanted: str | None = None) -> str:
    """The device the next attached volume gets, as libvirt names them: the first free
    ``/dev/vdX`` after the image's local root disk (``/dev/vda``) and every attached volume;
    a requested name is kept if it is free."""
    used = set(server.get("_devices", {}).values())
    if server.get("image"):
        used.add("/dev/vda")
    if wanted and wanted not in used:
        return wanted
    letters = (chr(code) for code in range(ord("a"), ord("z") + 1))
    free = next((f"/dev/vd{letter}" for letter in letters if f"/dev/vd{letter}" not in used), None)
    if free is None:
        raise SimError(400, f"No free device name left on instance {server['id']}.")
    return free
