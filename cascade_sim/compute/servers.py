"""Servers: create (image, boot from volume, networks, ports, key), list with filters,
show, update, delete."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from cascade.api.keystone import Caller
from cascade.identity import AuthContext, authorize
from cascade_sim import image, network, volume
from cascade_sim.common import RegionDep, project_of
from cascade_sim.compute import flavors as flavor_catalog
from cascade_sim.compute import keypairs
from cascade_sim.compute.records import (
    apply_pending,
    attach_volume,
    links,
    load,
    next_device,
    place,
    render,
    schedule,
    set_status,
)
from cascade_sim.errors import SimError
from cascade_sim.microversions import NovaVersion
from cascade_sim.region import Region
from cascade_sim.state import new_uuid, now_iso

router = APIRouter(prefix="/compute/v2.1", tags=["compute"])


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


@router.post("/servers", status_code=202, summary="Create a server")
def create_server(
    body: ServerCreateBody, request: Request, caller: Caller, site: RegionDep, mv: NovaVersion
) -> dict[str, Any]:
    spec = body.server
    project = project_of(caller)
    flavor = flavor_catalog.get(site, spec.flavorRef, status=400)
    _check_boot_source(site, spec)
    if spec.key_name:
        keypairs.get(site, caller, spec.key_name)
    server_id, host, now = new_uuid(), place(site), now_iso()
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
        "_devices": {},
    }
    set_status(server, "BUILD", "spawning")
    site.state.put("server", server, project)
    _attach_networks(site, server, spec, project)
    _attach_boot_volumes(site, server, spec, project)
    schedule(server, "ACTIVE", site.config.build_seconds)
    site.state.put("server", server, project)
    base = str(request.base_url).rstrip("/")
    return {
        "server": {
            "id": server_id,
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": server["security_groups"],
            "links": links(server, base),
        }
    }


def _image_ref(spec: ServerCreate) -> dict[str, Any] | str:
    return {"id": spec.imageRef, "links": []} if spec.imageRef else ""


def _check_boot_source(site: Region, spec: ServerCreate) -> None:
    boots_from_volume = any(str(d.boot_index) == "0" for d in spec.block_device_mapping_v2 or [])
    if not spec.imageRef and not boots_from_volume:
        raise SimError(
            400,
            "Missing imageRef attribute (or a block_device_mapping_v2 entry with boot_index 0).",
        )
    if spec.imageRef and image.get_image(site, spec.imageRef) is None:
        raise SimError(400, f"Image {spec.imageRef} could not be found.")


def _attach_networks(
    site: Region, server: dict[str, Any], spec: ServerCreate, project: str
) -> None:
    if spec.networks == "none":
        return
    requests = spec.networks if isinstance(spec.networks, list) else _automatic(site, spec, project)
    for requested in requests:
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


def _automatic(site: Region, spec: ServerCreate, project: str) -> list[NetworkRequest]:
    """Nova's choice when no network is named: the project's only usable network (its own or
    a shared one). None at all: ``auto`` fails (this region offers no auto-allocated
    topology), an absent ``networks`` (before microversion 2.37) boots unplugged; more than
    one: ambiguous."""
    usable = network.usable_networks(site, project)
    if len(usable) > 1:
        raise SimError(
            409, "Multiple possible networks found, use a Network ID to be more specific."
        )
    if usable:
        return [NetworkRequest(uuid=usable[0], port=None, fixed_ip=None)]
    if spec.networks == "auto":
        raise SimError(
            400,
            f"Unable to automatically allocate a network for project {project}: "
            "no network is available to it and this region has no auto-allocated topology.",
        )
    return []


def _attach_boot_volumes(
    site: Region, server: dict[str, Any], spec: ServerCreate, project: str
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
        attach_volume(
            site,
            server,
            volume_id,
            next_device(server),
            project,
            device.delete_on_termination,
        )


def _filtered(
    site: Region, caller: AuthContext, all_tenants: bool, filters: dict[str, str | None]
) -> list[dict[str, Any]]:
    if all_tenants:
        authorize(caller, "admin")
        servers = site.state.list("server")
    else:
        servers = site.state.list("server", project_of(caller))
    chosen = [
        server
        for server in (apply_pending(site, s) for s in servers)
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


@router.get("/servers", summary="List servers")
@router.get("/servers/detail", summary="List servers with details")
def list_servers(
    request: Request,
    caller: Caller,
    site: RegionDep,
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
                {"id": s["id"], "name": s["name"], "links": links(s, base)} for s in servers
            ]
        }
    return {"servers": [render(site, s, mv, base) for s in servers]}


@router.get("/servers/{server_id}", summary="Show a server")
def show_server(
    server_id: str, request: Request, caller: Caller, site: RegionDep, mv: NovaVersion
) -> dict[str, Any]:
    server = load(site, caller, server_id)
    return {"server": render(site, server, mv, str(request.base_url).rstrip("/"))}


@router.put("/servers/{server_id}", summary="Update a server's name or description")
def update_server(
    server_id: str,
    body: Annotated[dict[str, Any], Body()],
    request: Request,
    caller: Caller,
    site: RegionDep,
    mv: NovaVersion,
) -> dict[str, Any]:
    server = load(site, caller, server_id)
    changes = body.get("server")
    if not isinstance(changes, dict) or not set(changes) <= {"name", "description"}:
        raise SimError(400, "server may only change name and description.")
    server.update({k: str(v) for k, v in changes.items()}, updated=now_iso())
    site.state.put("server", server, server["_project_id"])
    return {"server": render(site, server, mv, str(request.base_url).rstrip("/"))}


@router.delete("/servers/{server_id}", status_code=204, summary="Delete a server")
def delete_server(server_id: str, caller: Caller, site: RegionDep) -> None:
    server = load(site, caller, server_id)
    for attached in server["os-extended-volumes:volumes_attached"]:
        volume.detach_volume(site, attached["id"], server_id)
    network.unbind_ports(site, server_id)
    site.state.delete("server", server_id)
