"""Volumes: the record of a new volume and where its bytes come from (blank, an image, a
snapshot, another volume), its size, whether it may be deleted, and create, list, show,
update and delete at ``/volumes``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from cascade.api.keystone import Caller
from cascade.identity import AuthContext
from cascade_sim.common import RegionDep, project_of, public
from cascade_sim.errors import SimError
from cascade_sim.region import Region
from cascade_sim.volume.bodies import MAX_SIZE_GB, Changes, Metadata, Strict, Text
from cascade_sim.volume.disk import GIB, data_file, gib, replacing
from cascade_sim.volume.fill import image_path, run_volume_job
from cascade_sim.volume.jobs import submit
from cascade_sim.volume.records import (
    ZONE,
    Json,
    ListingDep,
    changed,
    check_zone,
    detailed,
    discard,
    due_at,
    fresh,
    links,
    listing,
    load,
    require_status,
    save,
    summary,
)
from cascade_sim.volume.replication import replication_fields
from cascade_sim.volume.volume_types import (
    DEFAULT_TYPE,
    check_type_allowed,
    find_volume_type,
)

DELETABLE = {"available", "error", "error_restoring", "error_extending", "error_managing"}


class VolumeSpec(Strict):
    size: int | None = Field(None, ge=1, le=MAX_SIZE_GB, description="GiB")
    name: Text | None = None
    description: Text | None = None
    metadata: Metadata | None = None
    imageRef: str | None = None  # noqa: N815 - Cinder's field name
    snapshot_id: str | None = None
    source_volid: str | None = None
    volume_type: str | None = None
    group_id: str | None = None
    availability_zone: str | None = None
    multiattach: bool = False
    consistencygroup_id: None = None
    backup_id: None = None


class VolumeCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")  # e.g. OS-SCH-HNT:scheduler_hints beside it
    volume: VolumeSpec


class VolumeUpdate(Strict):
    volume: Changes


SourceKind = Literal["image", "snapshot", "volume"]


@dataclass(frozen=True)
class Source:
    """What a new volume is filled from, and the size it needs at least (GiB)."""

    kind: SourceKind
    ref: str
    min_size: int


def image_source(site: Region, image_id: str) -> Source:
    """An image as a new volume's source: it needs the whole GiB holding the image's bytes."""
    return Source("image", image_id, gib(image_path(site, image_id).stat().st_size))


def _source_of(site: Region, caller: AuthContext, spec: VolumeSpec) -> Source | None:
    candidates: list[tuple[SourceKind, str | None]] = [
        ("image", spec.imageRef),
        ("snapshot", spec.snapshot_id),
        ("volume", spec.source_volid),
    ]
    given = [(kind, ref) for kind, ref in candidates if ref]
    if len(given) > 1:
        raise SimError(
            400, "Give at most one of volume.imageRef, volume.snapshot_id and volume.source_volid."
        )
    if not given:
        return None
    kind, ref = given[0]
    if kind == "image":
        return image_source(site, ref)
    field = "volume.snapshot_id" if kind == "snapshot" else "volume.source_volid"
    body = load(site, caller, kind, ref, field)
    copyable = {"available"} if kind == "snapshot" else {"available", "in-use"}
    require_status(kind, body, copyable, "copying it into a new volume")
    return Source(kind, ref, int(body["size"]))


def volume_size(requested: int | None, source: Source | None) -> int:
    """The size of a new volume (GiB): the one requested, at least its source's."""
    if requested is None:
        if source is None or source.kind == "image":
            raise SimError(400, "volume.size is required unless copying a snapshot or a volume.")
        return source.min_size
    if source is not None and requested < source.min_size:
        raise SimError(
            400,
            f"volume.size {requested} GiB is smaller than the {source.kind} {source.ref} "
            f"({source.min_size} GiB).",
        )
    return requested


def new_volume(
    site: Region, project_id: str, user_id: str | None, size: int, **fields: Any
) -> Json:
    """The body of a new volume, status creating; ``fields`` override the defaults."""
    defaults: Json = {
        "name": None,
        "description": None,
        "size": size,
        "status": "creating",
        "availability_zone": ZONE,
        "attachments": [],
        "bootable": "false",
        "encrypted": False,
        "multiattach": False,
        "metadata": {},
        "volume_type": DEFAULT_TYPE["name"],
        "volume_type_id": DEFAULT_TYPE["id"],
        "snapshot_id": None,
        "source_volid": None,
        "group_id": None,
        "consistencygroup_id": None,
        "replication_status": None,
        "migration_status": None,
        "user_id": user_id,
        "os-vol-tenant-attr:tenant_id": project_id,
        "os-vol-host-attr:host": f"{site.config.name}@sim#sim",
    }
    volume = fresh(project_id, **(defaults | fields))
    volume_type = find_volume_type(site, volume["volume_type"], "volume.volume_type")
    volume["volume_type_id"] = volume_type["id"]
    return volume | replication_fields(volume_type, volume["id"])


def _start(site: Region, volume: Json, source: Source | None) -> None:
    """Store a new volume: a blank one is allocated now and available after build_seconds;
    one with a source is filled by a job."""
    if source is None:
        with replacing(data_file(site, "volume", volume["id"]), volume["size"] * GIB):
            pass  # a sparse file of the volume's size is all a blank volume needs
        volume["_due"] = due_at(site)
        save(site, "volume", volume)
        return
    volume["_job"] = {"kind": source.kind, "source": source.ref}
    save(site, "volume", volume)
    submit(site, run_volume_job, volume["id"])


def require_copyable(volume: Json, force: bool, copy: str) -> None:
    """A snapshot or a backup copies an available volume, or an in-use one if forced."""
    allowed = {"available", "in-use"} if force else {"available"}
    require_status("volume", volume, allowed, f"{copy} (in-use needs force)")


def check_deletable(site: Region, volume: Json) -> None:
    require_status("volume", volume, DELETABLE, "deleting it")
    dependent = [s for s in site.state.list("snapshot") if s["volume_id"] == volume["id"]]
    if dependent:
        raise SimError(
            409, f"Volume {volume['id']} still has {len(dependent)} dependent snapshots."
        )


def volume_view(site: Region, volume: Json) -> Json:
    return {**public(volume), "links": links(site, "volumes", volume["id"])}


volumes = APIRouter()


@volumes.post("/volumes", status_code=202, summary="Create a volume")
def create_volume(body: VolumeCreate, caller: Caller, site: RegionDep) -> Json:
    spec = body.volume
    project = project_of(caller)
    check_zone(spec.availability_zone, "volume.availability_zone")
    source = _source_of(site, caller, spec)
    size = volume_size(spec.size, source)
    volume_type = find_volume_type(site, spec.volume_type, "volume.volume_type")
    with site.state.lock:
        if spec.group_id:
            group = load(site, caller, "group", spec.group_id, "volume.group_id")
            require_status("group", group, {"available"}, "adding a volume")
            check_type_allowed(group, volume_type, "volume.volume_type")
        volume = new_volume(
            site,
            project,
            caller.user.id,
            size,
            name=spec.name,
            description=spec.description,
            metadata=spec.metadata or {},
            multiattach=spec.multiattach,
            volume_type=volume_type["name"],
            group_id=spec.group_id,
            snapshot_id=spec.snapshot_id,
            source_volid=spec.source_volid,
        )
        _start(site, volume, source)
    return {"volume": volume_view(site, volume)}


@volumes.get("/volumes", summary="List volumes")
@volumes.get("/volumes/detail", summary="List volumes with details")
def list_volumes(request: Request, query: ListingDep, caller: Caller, site: RegionDep) -> Json:
    found_volumes = listing(site, caller, "volume", query)
    if detailed(request):
        return {"volumes": [volume_view(site, v) for v in found_volumes]}
    return {"volumes": [summary(site, "volumes", v) for v in found_volumes]}


@volumes.get("/volumes/{volume_id}", summary="Show a volume")
def show_volume(volume_id: str, caller: Caller, site: RegionDep) -> Json:
    return {"volume": volume_view(site, load(site, caller, "volume", volume_id))}


@volumes.put("/volumes/{volume_id}", summary="Update a volume's name, description, metadata")
def update_volume(volume_id: str, body: VolumeUpdate, caller: Caller, site: RegionDep) -> Json:
    return {"volume": volume_view(site, changed(site, caller, "volume", volume_id, body.volume))}


@volumes.delete(
    "/volumes/{volume_id}", status_code=202, response_class=Response, summary="Delete a volume"
)
def delete_volume(volume_id: str, caller: Caller, site: RegionDep) -> None:
    with site.state.lock:
        volume = load(site, caller, "volume", volume_id)
        check_deletable(site, volume)
        discard(site, "volume", volume["id"])
