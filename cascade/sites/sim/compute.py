"""Nova v2.1 at ``/compute``: flavors, keypairs, availability zones, hypervisors (the site's
simulated hosts), servers with their lifecycle, actions (reboot, stop, start, quiesce,
unquiesce) and volume attachments.

Transitions that take time (BUILD -> ACTIVE, REBOOT -> ACTIVE ...) are stored as a pending
change with a due time and applied when the server is next read, so a restarted site-sim
carries on where it stopped. A quiesced server has the internal flag ``_frozen``: the volume
service refuses writes to its volumes until it is unquiesced.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from cascade.api.deps import Caller
from cascade.identity.policy import authorize
from cascade.identity.tokens import AuthContext
from cascade.sites.sim import flavors as flavor_catalog
from cascade.sites.sim import image, keypairs, network, volume
from cascade.sites.sim.common import SiteDep, found, project_of, public
from cascade.sites.sim.errors import SimError
from cascade.sites.sim.microversions import Microversion, NovaVersion
from cascade.sites.sim.site import Site
from cascade.sites.sim.state import new_uuid, now_iso

router = APIRouter(prefix="/compute", tags=["compute"])
V21 = "/v2.1"

STATES: dict[str, tuple[str, int]] = {  # status -> (vm_state, power_state)
    "BUILD": ("building", 0),
    "ACTIVE": ("active", 1),
    "REBOOT": ("active", 1),
    "SHUTOFF": ("stopped", 4),
    "ERROR": ("error", 0),
}
# action -> (statuses it is allowed from, transient status, task_state, final status)
ACTIONS: dict[str, tuple[frozenset[str], str, str, str]] = {
    "reboot": (frozenset({"ACTIVE", "SHUTOFF"}), "REBOOT", "rebooting", "ACTIVE"),
    "os-stop": (frozenset({"ACTIVE"}), "ACTIVE", "powering-off", "SHUTOFF"),
    "os-start": (frozenset({"SHUTOFF"}), "SHUTOFF", "powering-on", "ACTIVE"),
}


# ---- version documents ------------------------------------------------------------------


def _version(request: Request) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": "2.96",
        "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base}/compute/v2.1/"}],
        "media-types": [
            {
                "base": "application/json",
                "type": "application/vnd.openstack.compute+json;version=2.1",
            }
        ],
    }


@router.get("/", summary="Compute API versions")
def versions(request: Request) -> dict[str, Any]:
    return {"versions": [_version(request)]}


@router.get(V21, summary="Compute v2.1 version document")
@router.get(V21 + "/", include_in_schema=False)
def version(request: Request) -> dict[str, Any]:
    return {"version": _version(request)}


# ---- flavors, availability zones, hypervisors -----------------------------------------


@router.get(V21 + "/flavors", summary="List flavors")
@router.get(V21 + "/flavors/detail", summary="List flavors with details")
def list_flavors(_caller: Caller, site: SiteDep, mv: NovaVersion) -> dict[str, Any]:
    return {"flavors": [flavor_catalog.render(f, mv) for f in flavor_catalog.all_flavors(site)]}


@router.get(V21 + "/flavors/{flavor_id}", summary="Show a flavor")
def show_flavor(flavor_id: str, _caller: Caller, site: SiteDep, mv: NovaVersion) -> dict[str, Any]:
    return {"flavor": flavor_catalog.render(flavor_catalog.get(site, flavor_id), mv)}


@router.post(V21 + "/flavors", summary="Create a flavor (admin)")
def create_flavor(
    body: Annotated[dict[str, Any], Body()], caller: Caller, site: SiteDep, mv: NovaVersion
) -> dict[str, Any]:
    authorize(caller, "admin")
    return {"flavor": flavor_catalog.render(flavor_catalog.create(site, body), mv)}


@router.delete(V21 + "/flavors/{flavor_id}", status_code=202, summary="Delete a flavor")
def delete_flavor(flavor_id: str, caller: Caller, site: SiteDep) -> None:
    authorize(caller, "admin")
    flavor_catalog.get(site, flavor_id)
    site.state.delete("flavor", flavor_id)


@router.get(V21 + "/os-availability-zone", summary="Availability zones")
@router.get(V21 + "/os-availability-zone/detail", summary="Availability zones with hosts")
def availability_zones(_caller: Caller, site: SiteDep) -> dict[str, Any]:
    hosts = {h.name: {"nova-compute": {"available": True, "active": True}} for h in site.hosts}
    return {
        "availabilityZoneInfo": [
            {"zoneName": "nova", "zoneState": {"available": True}, "hosts": hosts}
        ]
    }


def _hypervisor(site: Site, index: int, detailed: bool) -> dict[str, Any]:
    host = site.hosts[index]
    body: dict[str, Any] = {
        "id": str(index + 1),
        "hypervisor_hostname": host.name,
        "state": "up",
        "status": "enabled",
    }
    if detailed:
        running = sum(1 for s in site.state.list("server") if s["_host"] == host.name)
        body.update(
            {
                "host_ip": host.tunnel_ip,
                "hypervisor_type": "QEMU",
                "running_vms": running,
                "service": {"host": host.name, "id": index + 1},
                "vcpus": 64,
                "memory_mb": 262144,
                "local_gb": 2048,
            }
        )
    return body


@router.get(V21 + "/os-hypervisors", summary="Compute hosts (admin)")
@router.get(V21 + "/os-hypervisors/detail", summary="Compute hosts with tunnel IPs (admin)")
def hypervisors(request: Request, caller: Caller, site: SiteDep) -> dict[str, Any]:
    authorize(caller, "admin")
    detailed = request.url.path.endswith("/detail")
    return {"hypervisors": [_hypervisor(site, i, detailed) for i in range(len(site.hosts))]}


# ---- keypairs ---------------------------------------------------------------------------

router.include_router(keypairs.router, prefix=V21)


# ---- servers ----------------------------------------------------------------------------


class NetworkRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    uuid: str | None = Field(None, max_length=64)
    port: str | None = Field(None, max_length=64)
    fixed_ip: str | None = Field(None, max_length=64)


class BlockDevice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    boot_index: int | str | None = None
    uuid: str | None = Field(None, max_length=64)
    source_type: Literal["image", "volume", "blank", "snapshot"] = "image"
    destination_type: Literal["volume", "local"] = "local"
    volume_size: int | None = Field(None, ge=1, le=16384)
    delete_on_termination: bool = False


class ServerCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=255)
    flavorRef: str = Field(min_length=1, max_length=255)  # noqa: N815 - Nova's field name
    imageRef: str | None = Field(None, max_length=255)  # noqa: N815
    networks: list[NetworkRequest] | Literal["auto", "none"] | None = None
    block_device_mapping_v2: list[BlockDevice] | None = None
    key_name: str | None = Field(None, max_length=255)
    metadata: dict[str, str] = Field(default_factory=dict)
    security_groups: list[dict[str, str]] | None = None
    availability_zone: str | None = None
    description: str | None = Field(None, max_length=255)


class ServerCreateBody(BaseModel):
    server: ServerCreate


def _apply_pending(site: Site, server: dict[str, Any]) -> dict[str, Any]:
    """Carry a due transition into the stored server (lazily, on read)."""
    pending = server.get("_pending")
    if pending and time.time() >= pending["due"]:
        _set_status(server, pending["status"], None)
        server["_pending"] = None
        server["updated"] = now_iso()
        if pending["status"] == "ACTIVE" and not server.get("OS-SRV-USG:launched_at"):
            server["OS-SRV-USG:launched_at"] = now_iso().rstrip("Z") + ".000000"
        site.state.put("server", server, server["_project_id"])
    return server


def _set_status(server: dict[str, Any], status: str, task: str | None) -> None:
    vm_state, power = STATES[status]
    server.update(
        {
            "status": status,
            "OS-EXT-STS:vm_state": vm_state,
            "OS-EXT-STS:task_state": task,
            "OS-EXT-STS:power_state": power,
        }
    )


def _schedule(server: dict[str, Any], status: str, seconds: float) -> None:
    server["_pending"] = {"status": status, "due": time.time() + seconds}


def _load(site: Site, caller: AuthContext, server_id: str) -> dict[str, Any]:
    return _apply_pending(site, found(site, caller, "server", server_id, "Instance"))


def _render(site: Site, server: dict[str, Any], mv: Microversion, base: str) -> dict[str, Any]:
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
    body["links"] = [{"rel": "self", "href": f"{base}/compute/v2.1/servers/{server['id']}"}]
    return body


def _place(site: Site) -> str:
    """The host with the fewest servers (the scheduler of a small region)."""
    load = {host.name: 0 for host in site.hosts}
    for server in site.state.list("server"):
        load[server["_host"]] = load.get(server["_host"], 0) + 1
    return min(load, key=lambda name: (load[name], name))


@router.post(V21 + "/servers", status_code=202, summary="Create a server")
def create_server(
    body: ServerCreateBody, request: Request, caller: Caller, site: SiteDep, mv: NovaVersion
) -> dict[str, Any]:
    spec = body.server
    project = project_of(caller)
    flavor = flavor_catalog.get(site, spec.flavorRef, status=400)
    _check_boot_source(site, spec)
    if spec.key_name:
        keypairs.get(site, caller, spec.key_name)
    server_id, host, now = new_uuid(), _place(site), now_iso()
    server: dict[str, Any] = {
        "id": server_id,
        "name": spec.name,
        "tenant_id": project,
        "user_id": caller.user.id,
        "metadata": spec.metadata,
        "hostId": host,
        "image": _image_ref(spec),
        "created": now,
        "updated": now,
        "accessIPv4": "",
        "accessIPv6": "",
        "OS-DCF:diskConfig": "MANUAL",
        "progress": 0,
        "OS-EXT-AZ:availability_zone": "nova",
        "config_drive": "",
        "key_name": spec.key_name,
        "OS-SRV-USG:launched_at": None,
        "OS-SRV-USG:terminated_at": None,
        "OS-EXT-SRV-ATTR:host": host,
        "OS-EXT-SRV-ATTR:hypervisor_hostname": host,
        "OS-EXT-SRV-ATTR:instance_name": f"instance-{server_id[:8]}",
        "os-extended-volumes:volumes_attached": [],
        "locked": False,
        "tags": [],
        "description": spec.description,
        "host_status": "UP",
        "security_groups": spec.security_groups or [{"name": "default"}],
        "_project_id": project,
        "_host": host,
        "_flavor": flavor,
        "_frozen": False,
        "_pending": None,
    }
    _set_status(server, "BUILD", "spawning")
    site.state.put("server", server, project)
    _attach_networks(site, server, spec, project)
    _attach_boot_volumes(site, server, spec, project)
    _schedule(server, "ACTIVE", site.config.build_seconds)
    site.state.put("server", server, project)
    base = str(request.base_url).rstrip("/")
    return {
        "server": {
            "id": server_id,
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": server["security_groups"],
            "links": _render(site, server, mv, base)["links"],
        }
    }


def _image_ref(spec: ServerCreate) -> dict[str, Any] | str:
    return {"id": spec.imageRef, "links": []} if spec.imageRef else ""


def _check_boot_source(site: Site, spec: ServerCreate) -> None:
    boots_from_volume = any(str(d.boot_index) == "0" for d in spec.block_device_mapping_v2 or [])
    if not spec.imageRef and not boots_from_volume:
        raise SimError(
            400,
            "Missing imageRef attribute (or a block_device_mapping_v2 entry with boot_index 0).",
        )
    if spec.imageRef and image.get_image(site, spec.imageRef) is None:
        raise SimError(400, f"Image {spec.imageRef} could not be found.")


def _attach_networks(site: Site, server: dict[str, Any], spec: ServerCreate, project: str) -> None:
    if not isinstance(spec.networks, list):
        return
    for requested in spec.networks:
        kwargs = {
            "device_id": server["id"],
            "device_owner": "compute:nova",
            "host": server["_host"],
        }
        if requested.port:
            network.bind_port(site, requested.port, project_id=project, **kwargs)
        elif requested.uuid:
            network.create_port(site, project, requested.uuid, **kwargs)
        else:
            raise SimError(400, "Each networks entry needs a uuid or a port.")


def _attach_boot_volumes(
    site: Site, server: dict[str, Any], spec: ServerCreate, project: str
) -> None:
    for index, device in enumerate(spec.block_device_mapping_v2 or []):
        if device.destination_type != "volume":
            continue
        if device.source_type == "volume" and device.uuid:
            volume_id = device.uuid
        elif device.source_type == "image" and device.uuid:
            volume_id = volume.create_boot_volume(
                site, project, device.uuid, device.volume_size or 1, server["name"]
            )
        else:
            raise SimError(400, f"block_device_mapping_v2[{index}] needs a volume or image uuid.")
        _attach(
            site,
            server,
            volume_id,
            f"/dev/vd{chr(ord('a') + index)}",
            project,
            device.delete_on_termination,
        )


def _attach(
    site: Site,
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
    site.state.put("server", server, server["_project_id"])
    return attachment


def _filtered(
    site: Site, caller: AuthContext, all_tenants: bool, filters: dict[str, str | None]
) -> list[dict[str, Any]]:
    if all_tenants:
        authorize(caller, "admin")
        servers = site.state.list("server")
    else:
        servers = site.state.list("server", project_of(caller))
    chosen = [
        server
        for server in (_apply_pending(site, s) for s in servers)
        if all(_matches(server, key, value) for key, value in filters.items() if value)
    ]
    return sorted(chosen, key=lambda s: s["created"], reverse=True)


def _matches(server: dict[str, Any], key: str, value: str) -> bool:
    if key == "name":
        return value in server["name"]
    if key == "status":
        return bool(server["status"] == value.upper())
    return bool(server["_host"] == value)


ServerFilter = Annotated[str | None, Query(max_length=255)]


@router.get(V21 + "/servers", summary="List servers")
@router.get(V21 + "/servers/detail", summary="List servers with details")
def list_servers(
    request: Request,
    caller: Caller,
    site: SiteDep,
    mv: NovaVersion,
    name: ServerFilter = None,
    status: ServerFilter = None,
    host: ServerFilter = None,
    all_tenants: ServerFilter = None,
) -> dict[str, Any]:
    everyone = all_tenants is not None and all_tenants.lower() not in ("0", "false")
    servers = _filtered(site, caller, everyone, {"name": name, "status": status, "host": host})
    base = str(request.base_url).rstrip("/")
    if not request.url.path.endswith("/detail"):
        return {
            "servers": [
                {"id": s["id"], "name": s["name"], "links": _render(site, s, mv, base)["links"]}
                for s in servers
            ]
        }
    return {"servers": [_render(site, s, mv, base) for s in servers]}


@router.get(V21 + "/servers/{server_id}", summary="Show a server")
def show_server(
    server_id: str, request: Request, caller: Caller, site: SiteDep, mv: NovaVersion
) -> dict[str, Any]:
    server = _load(site, caller, server_id)
    return {"server": _render(site, server, mv, str(request.base_url).rstrip("/"))}


@router.put(V21 + "/servers/{server_id}", summary="Update a server's name or description")
def update_server(
    server_id: str,
    body: Annotated[dict[str, Any], Body()],
    request: Request,
    caller: Caller,
    site: SiteDep,
    mv: NovaVersion,
) -> dict[str, Any]:
    server = _load(site, caller, server_id)
    changes = body.get("server")
    if not isinstance(changes, dict) or not set(changes) <= {"name", "description"}:
        raise SimError(400, "server may only change name and description.")
    server.update({k: str(v) for k, v in changes.items()}, updated=now_iso())
    site.state.put("server", server, server["_project_id"])
    return {"server": _render(site, server, mv, str(request.base_url).rstrip("/"))}


@router.delete(V21 + "/servers/{server_id}", status_code=204, summary="Delete a server")
def delete_server(server_id: str, caller: Caller, site: SiteDep) -> None:
    server = _load(site, caller, server_id)
    for attached in server["os-extended-volumes:volumes_attached"]:
        volume.detach_volume(site, attached["id"], server_id)
    network.unbind_ports(site, server_id)
    site.state.delete("server", server_id)


@router.post(V21 + "/servers/{server_id}/action", status_code=202, summary="Server action")
def server_action(
    server_id: str, body: Annotated[dict[str, Any], Body()], caller: Caller, site: SiteDep
) -> None:
    if len(body) != 1:
        raise SimError(400, "An action body has exactly one key, the action's name.")
    action = next(iter(body))
    server = _load(site, caller, server_id)
    if action in ACTIONS:
        _lifecycle(site, server, action)
    elif action in ("quiesce", "unquiesce"):
        _freeze(site, server, action == "quiesce")
    else:
        raise SimError(400, f"There is no such action: {action}")
    site.state.put("server", server, server["_project_id"])


def _lifecycle(site: Site, server: dict[str, Any], action: str) -> None:
    allowed, transient, task, final = ACTIONS[action]
    if server["status"] not in allowed or server.get("_pending"):
        raise SimError(
            409,
            f"Cannot '{action}' instance {server['id']} while it is in "
            f"vm_state {server['OS-EXT-STS:vm_state']}",
        )
    _set_status(server, transient, task)
    _schedule(server, final, site.config.build_seconds)


def _freeze(site: Site, server: dict[str, Any], freeze: bool) -> None:
    name = "quiesce" if freeze else "unquiesce"
    if server["status"] != "ACTIVE" or server.get("_pending"):
        raise SimError(
            409,
            f"Cannot '{name}' instance {server['id']} while it is in "
            f"vm_state {server['OS-EXT-STS:vm_state']}",
        )
    if server["_frozen"] == freeze:
        raise SimError(
            409,
            f"Instance {server['id']} is already {'quiesced' if freeze else 'running unquiesced'}.",
        )
    faulty = site.faults.quiesce_failures
    if freeze and (server["id"] in faulty or server["name"] in faulty):
        raise SimError(
            409,
            f"Quiescing instance {server['id']} failed: the guest agent did "
            "not answer (injected fault).",
        )
    server["_frozen"] = freeze


# ---- volume attachments -----------------------------------------------------------------


class VolumeAttachmentIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    volumeId: str = Field(min_length=1, max_length=64)  # noqa: N815 - Nova's field name
    device: str | None = Field(None, max_length=64, pattern=r"^/dev/[a-z]+$")


class VolumeAttachmentBody(BaseModel):
    volumeAttachment: VolumeAttachmentIn  # noqa: N815


def _attachment_view(server: dict[str, Any], volume_id: str, device: str) -> dict[str, Any]:
    return {"id": volume_id, "volumeId": volume_id, "serverId": server["id"], "device": device}


@router.get(V21 + "/servers/{server_id}/os-volume_attachments", summary="Attached volumes")
def list_attachments(server_id: str, caller: Caller, site: SiteDep) -> dict[str, Any]:
    server = _load(site, caller, server_id)
    return {
        "volumeAttachments": [
            _attachment_view(server, a["id"], f"/dev/vd{chr(ord('a') + i)}")
            for i, a in enumerate(server["os-extended-volumes:volumes_attached"])
        ]
    }


@router.post(V21 + "/servers/{server_id}/os-volume_attachments", summary="Attach a volume")
def attach(
    server_id: str, body: VolumeAttachmentBody, caller: Caller, site: SiteDep
) -> dict[str, Any]:
    server = _load(site, caller, server_id)
    if server["status"] not in ("ACTIVE", "SHUTOFF"):
        raise SimError(
            409,
            f"Cannot 'attach_volume' instance {server_id} while it is in "
            f"vm_state {server['OS-EXT-STS:vm_state']}",
        )
    count = len(server["os-extended-volumes:volumes_attached"])
    device = body.volumeAttachment.device or f"/dev/vd{chr(ord('a') + count)}"
    project = None if caller.is_admin else project_of(caller)
    return {
        "volumeAttachment": _attach(site, server, body.volumeAttachment.volumeId, device, project)
    }


@router.delete(
    V21 + "/servers/{server_id}/os-volume_attachments/{volume_id}",
    status_code=202,
    summary="Detach a volume",
)
def detach(server_id: str, volume_id: str, caller: Caller, site: SiteDep) -> None:
    server = _load(site, caller, server_id)
    attached = server["os-extended-volumes:volumes_attached"]
    if not any(a["id"] == volume_id for a in attached):
        raise SimError(404, f"Volume {volume_id} is not attached to instance {server_id}.")
    volume.detach_volume(site, volume_id, server_id)
    server["os-extended-volumes:volumes_attached"] = [a for a in attached if a["id"] != volume_id]
    site.state.put("server", server, server["_project_id"])


def routers() -> list[APIRouter]:
    return [router]
