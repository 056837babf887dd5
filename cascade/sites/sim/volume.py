"""Cinder v3 at ``/volume/v3`` (and ``/volume/v3/{project_id}``): volumes holding real bytes,
snapshots, volume types, groups and group snapshots, backups kept in a store several sites
share, volume manage by reference; and ``/sim/v1/volumes/{id}`` to read and write a volume's
bytes. Exports ``attach_volume``, ``detach_volume`` and ``create_boot_volume`` for Nova, and
``recover`` for the site's startup.

On disk, under the site's data dir: ``volumes/<id>.img`` (a sparse file of the volume's size),
``volumes/unmanaged/<name>`` (files ``manage`` can adopt), ``snapshots/<id>.img`` and
``backup-tmp/<backup id>.img`` (the point-in-time copy a running backup reads). Files are
written under a ``.part`` name and renamed once complete.

The backup store (``site.config.backup_store``) has one directory per backup:
``metadata.json`` (id, owner project, volume size, parent, chunk geometry...; written last, so
a directory without it is an unfinished backup), ``sha256.json`` (one entry per 4 MiB chunk of
the volume: null for zeros, else the backup storing the chunk and the sha256 of each 32 KiB
block) and ``chunks/<index>`` (the chunks this backup stores; an incremental backup stores only
those that differ from its parent's at the same position). A site finding in the store a backup
it does not know imports it on first sight.

Transitions that only take time (creating -> available) are due times in the body, applied on
read. Work that moves bytes runs on a per-site thread pool and is recorded in the body first
(``_job`` on the volume being filled, status ``creating`` on a backup). ``recover`` (run once
per Site, at the latest on its first request) redoes from the start every copy into a volume
being created or restored, marks ``error`` every backup that was running (its partial chunks
removed, its source's status restored) and finishes interrupted backup deletions.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cascade.api.deps import Caller
from cascade.identity.policy import authorize
from cascade.identity.tokens import AuthContext
from cascade.sites.sim import image
from cascade.sites.sim.common import SiteDep, found, project_of, public, visible
from cascade.sites.sim.errors import SimError
from cascade.sites.sim.microversions import Microversion, VersionRange
from cascade.sites.sim.site import Site
from cascade.sites.sim.state import new_uuid, now_iso

log = logging.getLogger(__name__)

Json = dict[str, Any]
GIB = 1 << 30
CHUNK = 4 << 20  # a backup's unit of storage
BLOCK = 32 << 10  # a backup's unit of verification: one sha256 each
ZEROS = bytes(CHUNK)
MAX_SIZE_GB = 16384
MAX_READ = 64 << 20
PROGRESS_EVERY = 0.5  # seconds between two progress reports of a running backup
ZONE = "nova"
BACKUP_CONTAINER = "volumebackups"
STORE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
AREAS = {"volume": "volumes", "snapshot": "snapshots", "staging": "backup-tmp"}
LABELS = {
    "volume": "Volume",
    "snapshot": "Snapshot",
    "backup": "Backup",
    "group": "Group",
    "group_snapshot": "GroupSnapshot",
}
DELETABLE = {"available", "error", "error_restoring", "error_extending", "error_managing"}
IO_STATUSES = {"available", "in-use", "backing-up"}
DEFAULT_TYPE: Json = {
    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "cascade-site-sim:volume-type:__DEFAULT__")),
    "name": "__DEFAULT__",
    "description": "Default Volume Type",
    "is_public": True,
    "os-volume-type-access:is_public": True,
    "extra_specs": {},
    "qos_specs_id": None,
}
DEFAULT_GROUP_TYPE = "default_group_type"
VolumeStatus = Literal[
    "creating",
    "available",
    "reserved",
    "attaching",
    "detaching",
    "in-use",
    "maintenance",
    "deleting",
    "error",
    "error_deleting",
    "backing-up",
    "restoring-backup",
    "error_restoring",
    "error_extending",
]

CINDER = VersionRange("volume", None, Microversion(3, 0), Microversion(3, 70))
CinderVersion = Annotated[Microversion, CINDER.dependency()]


# ---- request bodies -----------------------------------------------------------------------

Text = Annotated[str, Field(max_length=255)]
Metadata = dict[Annotated[str, Field(min_length=1, max_length=255)], Text]
M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class Changes(Strict):
    """What an update of a volume or a snapshot may change."""

    name: Text | None = None
    description: Text | None = None
    metadata: Metadata = Field(default_factory=dict)


class VolumeUpdate(Strict):
    volume: Changes


class SnapshotUpdate(Strict):
    snapshot: Changes


class SnapshotSpec(Strict):
    volume_id: str
    force: bool = False
    name: Text | None = None
    description: Text | None = None
    metadata: Metadata | None = None


class SnapshotCreate(Strict):
    snapshot: SnapshotSpec


class GroupTypeSpec(Strict):
    name: str = Field(min_length=1, max_length=255)
    description: Text | None = None
    is_public: bool = True
    group_specs: dict[str, str] = Field(default_factory=dict)


class GroupTypeCreate(Strict):
    group_type: GroupTypeSpec


class GroupSpec(Strict):
    name: Text | None = None
    description: Text | None = None
    group_type: str | None = None
    volume_types: list[str] | None = None
    availability_zone: str | None = None


class GroupCreate(Strict):
    group: GroupSpec


class GroupChanges(Strict):
    name: Text | None = None
    description: Text | None = None
    add_volumes: str | None = Field(None, description="Comma-separated volume ids")
    remove_volumes: str | None = Field(None, description="Comma-separated volume ids")


class GroupUpdate(Strict):
    group: GroupChanges


class GroupDeletion(Strict):
    delete_volumes: bool = Field(False, alias="delete-volumes")


class GroupSnapshotSpec(Strict):
    group_id: str
    name: Text | None = None
    description: Text | None = None


class GroupSnapshotCreate(Strict):
    group_snapshot: GroupSnapshotSpec


class BackupSpec(Strict):
    volume_id: str
    container: Text | None = None
    name: Text | None = None
    description: Text | None = None
    incremental: bool = False
    force: bool = False
    snapshot_id: str | None = None
    metadata: Metadata | None = None
    availability_zone: str | None = None


class BackupCreate(Strict):
    backup: BackupSpec


class RestoreSpec(Strict):
    volume_id: str | None = None
    name: Text | None = None
    availability_zone: str | None = None


class RestoreRequest(Strict):
    restore: RestoreSpec


class ManageRef(BaseModel):
    model_config = ConfigDict(extra="ignore")
    source_name: str = Field(
        alias="source-name", min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$"
    )


class ManageSpec(Strict):
    host: str = Field(min_length=1, max_length=255)
    ref: ManageRef
    name: Text | None = None
    description: Text | None = None
    volume_type: str | None = None
    availability_zone: str | None = None
    metadata: Metadata | None = None
    bootable: bool = False
    cluster: str | None = None


class ManageRequest(Strict):
    volume: ManageSpec


class NoArgument(Strict):
    pass


class SetBootable(Strict):
    bootable: bool


class Extend(Strict):
    new_size: int = Field(ge=1, le=MAX_SIZE_GB)


class ResetStatus(Strict):
    status: VolumeStatus | None = None
    attach_status: Literal["attached", "detached"] | None = None
    migration_status: str | None = None


class Attach(Strict):
    mountpoint: str = Field(min_length=1, max_length=255)
    instance_uuid: str | None = None
    host_name: str | None = None
    mode: Literal["rw", "ro"] = "rw"


class Detach(Strict):
    attachment_id: str | None = None


def _parse(model: type[M], value: Any, where: str) -> M:
    """An action's argument validated by ``model``; a 400 naming the field otherwise."""
    try:
        return model.model_validate({} if value is None else value)
    except ValidationError as error:
        problem = error.errors()[0]
        field = ".".join([where, *(str(part) for part in problem["loc"])])
        raise SimError(
            400, f"Invalid input for field/attribute {field}: {problem['msg']}."
        ) from None


def _single_action(body: Json) -> tuple[str, Any]:
    if len(body) != 1:
        raise SimError(400, "An action body has exactly one key, the action's name.")
    return next(iter(body.items()))


# ---- files: sparse copies, atomic writes --------------------------------------------------


def _area(site: Site, area: str) -> Path:
    directory = site.config.data_dir / AREAS[area]
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _data_file(site: Site, area: str, resource_id: str) -> Path:
    return _area(site, area) / f"{resource_id}.img"


def _unmanaged_dir(site: Site) -> Path:
    directory = site.config.data_dir / "volumes" / "unmanaged"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _gib(nbytes: int) -> int:
    return max(1, -(-nbytes // GIB))


@contextmanager
def _replacing(target: Path, size: int) -> Iterator[int]:
    """A descriptor on a new sparse file of ``size`` bytes, renamed over ``target`` only once
    the block completes; on failure ``target`` is left as it was."""
    partial = target.with_name(target.name + ".part")
    try:
        with partial.open("wb") as writer:
            writer.truncate(size)
            yield writer.fileno()
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _extents(fd: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The ranges of ``[start, end)`` of an open file holding data; holes are skipped."""
    position = start
    while position < end:
        try:
            data = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as error:
            if error.errno == errno.ENXIO:  # no data after position
                return
            raise
        if data >= end:
            return
        position = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        yield data, position


def _sparse_copy(source: Path, target: Path, size: int) -> None:
    """``target`` becomes a ``size``-byte copy of ``source`` whose holes stay holes."""
    with source.open("rb") as reader, _replacing(target, size) as fd:
        length = min(os.fstat(reader.fileno()).st_size, size)
        for start, end in _extents(reader.fileno(), 0, length):
            position = start
            while position < end:
                copied = os.copy_file_range(reader.fileno(), fd, end - position, position, position)
                if copied == 0:  # the source shrank under us
                    break
                position += copied


def _sha256(path: Path) -> str:
    """The file's sha256; holes are hashed as zeros without being read (reading them would
    fill the page cache with zeros)."""
    digest = hashlib.sha256()
    zeros = memoryview(ZEROS)
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        done = 0
        for start, end in [*_extents(handle.fileno(), 0, size), (size, size)]:
            for offset in range(done, start, CHUNK):
                digest.update(zeros[: min(CHUNK, start - offset)])
            for offset in range(start, end, CHUNK):
                digest.update(os.pread(handle.fileno(), min(CHUNK, end - offset), offset))
            done = end
    return digest.hexdigest()


def _write_json(path: Path, data: Any) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(data))
    os.replace(partial, path)


# ---- resources: load, save, lazy transitions, listings ------------------------------------


def _fresh(owner: str, /, **fields: Any) -> Json:
    now = now_iso()
    return {
        "id": new_uuid(),
        "created_at": now,
        "updated_at": now,
        **fields,
        "_project_id": owner,
        "_created": time.time_ns(),
    }


def _due(site: Site) -> float:
    return time.time() + site.config.build_seconds


def _save(site: Site, kind: str, body: Json) -> Json:
    body["updated_at"] = now_iso()
    return site.state.put(kind, body, body["_project_id"])


def _update(site: Site, kind: str, resource_id: str, **fields: Any) -> Json | None:
    with site.state.lock:
        body = site.state.get(kind, resource_id)
        if body is None:
            return None
        body.update(fields)
        return _save(site, kind, body)


def _settled(site: Site, kind: str, body: Json) -> Json:
    """The body with its due transition to available applied (and stored) once due."""
    due = body.get("_due")
    if due is None or time.time() < due:
        return body
    with site.state.lock:
        current = site.state.get(kind, body["id"])
        if current is None or current.get("_due") != due:
            return current or body
        current["status"] = "available"
        del current["_due"]
        return _save(site, kind, current)


def _load(
    site: Site, caller: AuthContext, kind: str, resource_id: str, field: str | None = None
) -> Json:
    """A resource the caller may see, else a 404 (naming ``field`` when it came from a body)."""
    label = f"{field}: {LABELS[kind]}" if field else LABELS[kind]
    return _settled(site, kind, found(site, caller, kind, resource_id, label))


def _require_status(kind: str, body: Json, allowed: set[str], doing: str) -> None:
    if body["status"] not in allowed:
        raise SimError(
            409,
            f"{LABELS[kind]} {body['id']} is {body['status']}; {doing} needs it "
            f"{' or '.join(sorted(allowed))}.",
        )


@dataclass
class Listing:
    """Cinder's list filters; ``all_tenants=1`` lists every project's (admin only)."""

    name: str | None = None
    status: str | None = None
    volume_id: str | None = None
    all_tenants: str | None = None


ListingDep = Annotated[Listing, Depends()]


def _listing(site: Site, caller: AuthContext, kind: str, query: Listing) -> list[Json]:
    everyone = caller.is_admin and (query.all_tenants or "").lower() in ("1", "true", "yes")
    wanted = {
        key: value
        for key, value in (
            ("name", query.name),
            ("status", query.status),
            ("volume_id", query.volume_id),
        )
        if value is not None
    }
    bodies = [
        _settled(site, kind, body)
        for body in site.state.list(kind, None if everyone else project_of(caller))
    ]
    chosen = [b for b in bodies if all(b.get(key) == value for key, value in wanted.items())]
    return sorted(chosen, key=lambda body: int(body["_created"]), reverse=True)


def _detailed(request: Request) -> bool:
    return request.url.path.endswith("/detail")


def _links(site: Site, collection: str, resource_id: str) -> list[Json]:
    base = site.config.base_url
    return [
        {"rel": "self", "href": f"{base}/volume/v3/{collection}/{resource_id}"},
        {"rel": "bookmark", "href": f"{base}/volume/{collection}/{resource_id}"},
    ]


def _summary(site: Site, collection: str, body: Json) -> Json:
    return {"id": body["id"], "name": body["name"], "links": _links(site, collection, body["id"])}


def _volume_view(site: Site, volume: Json) -> Json:
    return {**public(volume), "links": _links(site, "volumes", volume["id"])}


def _bootable_of(body: Json) -> str:
    """Volumes show ``bootable``; snapshots and backups keep their volume's as ``_bootable``."""
    return str(body.get("bootable", body.get("_bootable", "false")))


# ---- background jobs ----------------------------------------------------------------------

_EXECUTORS: weakref.WeakKeyDictionary[Site, ThreadPoolExecutor] = weakref.WeakKeyDictionary()
_EXECUTORS_LOCK = threading.Lock()


def _log_failure(future: Future[None]) -> None:
    error = future.exception()
    if error is not None:
        log.error("volume job failed", exc_info=error)


def _submit(site: Site, job: Callable[..., None], *args: Any) -> None:
    with _EXECUTORS_LOCK:
        executor = _EXECUTORS.get(site)
        if executor is None:
            executor = ThreadPoolExecutor(2, thread_name_prefix=f"volume-{site.config.name}")
            _EXECUTORS[site] = executor
    executor.submit(job, site, *args).add_done_callback(_log_failure)


# ---- volumes ------------------------------------------------------------------------------


SourceKind = Literal["image", "snapshot", "volume"]


@dataclass(frozen=True)
class Source:
    """What a new volume is filled from, and the size it needs at least (GiB)."""

    kind: SourceKind
    ref: str
    min_size: int


def _image_path(site: Site, image_id: str) -> Path:
    path = image.image_file(site, image_id)
    if path is None:
        raise SimError(
            400, f"Invalid imageRef: image {image_id} could not be found or has no data."
        )
    return path


def _source_of(site: Site, caller: AuthContext, spec: VolumeSpec) -> Source | None:
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
        return Source("image", ref, _gib(_image_path(site, ref).stat().st_size))
    field = "volume.snapshot_id" if kind == "snapshot" else "volume.source_volid"
    body = _load(site, caller, kind, ref, field)
    copyable = {"available"} if kind == "snapshot" else {"available", "in-use"}
    _require_status(kind, body, copyable, "copying it into a new volume")
    return Source(kind, ref, int(body["size"]))


def _size(requested: int | None, source: Source | None) -> int:
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


def _volume_type(reference: str | None, field: str) -> Json:
    if reference in (None, DEFAULT_TYPE["id"], DEFAULT_TYPE["name"]):
        return DEFAULT_TYPE
    raise SimError(404, f"{field}: volume type {reference} could not be found.")


def _check_zone(zone: str | None, field: str) -> None:
    if zone not in (None, ZONE):
        raise SimError(
            400, f"{field}: availability zone {zone!r} is invalid (this region: {ZONE})."
        )


def _new_volume(site: Site, project_id: str, user_id: str | None, size: int, **fields: Any) -> Json:
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
    return _fresh(project_id, **(defaults | fields))


def _start(site: Site, volume: Json, source: Source | None) -> None:
    """Store a new volume: a blank one is allocated now and available after build_seconds;
    one with a source is filled by a job."""
    if source is None:
        with _replacing(_data_file(site, "volume", volume["id"]), volume["size"] * GIB):
            pass  # a sparse file of the volume's size is all a blank volume needs
        volume["_due"] = _due(site)
        _save(site, "volume", volume)
        return
    volume["_job"] = {"kind": source.kind, "source": source.ref}
    _save(site, "volume", volume)
    _submit(site, _run_volume_job, volume["id"])


def _check_type_allowed(group: Json, volume_type: Json, field: str) -> None:
    if volume_type["id"] not in group["volume_types"]:
        raise SimError(
            400, f"{field}: group {group['id']} does not take volume type {volume_type['name']}."
        )


def _snapshots_of(site: Site, volume_id: str) -> list[Json]:
    return [s for s in site.state.list("snapshot") if s["volume_id"] == volume_id]


def _check_deletable(site: Site, volume: Json) -> None:
    _require_status("volume", volume, DELETABLE, "deleting it")
    dependent = _snapshots_of(site, volume["id"])
    if dependent:
        raise SimError(
            409, f"Volume {volume['id']} still has {len(dependent)} dependent snapshots."
        )


def _remove_volume(site: Site, volume: Json) -> None:
    site.state.delete("volume", volume["id"])
    _data_file(site, "volume", volume["id"]).unlink(missing_ok=True)


def _add_attachment(volume: Json, *, server_id: str | None, host: str | None, device: str) -> None:
    volume["attachments"].append(
        {
            "id": volume["id"],
            "attachment_id": new_uuid(),
            "volume_id": volume["id"],
            "server_id": server_id,
            "host_name": host,
            "device": device,
            "attached_at": now_iso(),
        }
    )
    volume["status"] = "in-use"


def _detach(volume: Json, matches: Callable[[Json], bool]) -> int:
    """Remove the matching attachments; the volume rests available when none are left."""
    kept = [a for a in volume["attachments"] if not matches(a)]
    removed = len(volume["attachments"]) - len(kept)
    volume["attachments"] = kept
    if removed and not kept and volume["status"] == "in-use":
        volume["status"] = "available"
    if removed and not kept and volume["status"] == "backing-up":
        volume["_previous_status"] = "available"  # the status it returns to after the backup
    return removed


volumes = APIRouter()


@volumes.post("/volumes", status_code=202, summary="Create a volume")
def create_volume(body: VolumeCreate, caller: Caller, site: SiteDep) -> Json:
    spec = body.volume
    project = project_of(caller)
    _check_zone(spec.availability_zone, "volume.availability_zone")
    source = _source_of(site, caller, spec)
    size = _size(spec.size, source)
    volume_type = _volume_type(spec.volume_type, "volume.volume_type")
    with site.state.lock:
        if spec.group_id:
            group = _load(site, caller, "group", spec.group_id, "volume.group_id")
            _require_status("group", group, {"available"}, "adding a volume")
            _check_type_allowed(group, volume_type, "volume.volume_type")
        volume = _new_volume(
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
    return {"volume": _volume_view(site, volume)}


@volumes.get("/volumes", summary="List volumes")
@volumes.get("/volumes/detail", summary="List volumes with details")
def list_volumes(request: Request, query: ListingDep, caller: Caller, site: SiteDep) -> Json:
    found_volumes = _listing(site, caller, "volume", query)
    if _detailed(request):
        return {"volumes": [_volume_view(site, v) for v in found_volumes]}
    return {"volumes": [_summary(site, "volumes", v) for v in found_volumes]}


@volumes.get("/volumes/{volume_id}", summary="Show a volume")
def show_volume(volume_id: str, caller: Caller, site: SiteDep) -> Json:
    return {"volume": _volume_view(site, _load(site, caller, "volume", volume_id))}


def _changed(
    site: Site, caller: AuthContext, kind: str, resource_id: str, changes: Changes
) -> Json:
    with site.state.lock:
        body = _load(site, caller, kind, resource_id)
        body.update(changes.model_dump(exclude_unset=True))
        return _save(site, kind, body)


@volumes.put("/volumes/{volume_id}", summary="Update a volume's name, description, metadata")
def update_volume(volume_id: str, body: VolumeUpdate, caller: Caller, site: SiteDep) -> Json:
    return {"volume": _volume_view(site, _changed(site, caller, "volume", volume_id, body.volume))}


@volumes.delete(
    "/volumes/{volume_id}", status_code=202, response_class=Response, summary="Delete a volume"
)
def delete_volume(volume_id: str, caller: Caller, site: SiteDep) -> None:
    with site.state.lock:
        volume = _load(site, caller, "volume", volume_id)
        _check_deletable(site, volume)
        _remove_volume(site, volume)


@dataclass(frozen=True)
class ActionCall:
    """One ``POST /volumes/{id}/action``: the action's argument and what it acts on."""

    site: Site
    caller: AuthContext
    volume: Json
    argument: Any
    mv: Microversion


def _set_bootable(call: ActionCall) -> None:
    bootable = _parse(SetBootable, call.argument, "os-set_bootable").bootable
    call.volume["bootable"] = str(bootable).lower()


def _extend(call: ActionCall) -> None:
    new_size = _parse(Extend, call.argument, "os-extend").new_size
    volume = call.volume
    online = {"in-use"} if call.mv >= Microversion(3, 42) else set()
    _require_status("volume", volume, {"available", *online}, "extending it")
    if new_size <= volume["size"]:
        raise SimError(
            400,
            f"os-extend.new_size {new_size} must be greater than the volume's size "
            f"({volume['size']} GiB).",
        )
    os.truncate(_data_file(call.site, "volume", volume["id"]), new_size * GIB)
    volume["size"] = new_size


def _reserve(call: ActionCall) -> None:
    _parse(NoArgument, call.argument, "os-reserve")
    _require_status("volume", call.volume, {"available"}, "reserving it")
    call.volume["status"] = "attaching"


def _unreserve(call: ActionCall) -> None:
    _parse(NoArgument, call.argument, "os-unreserve")
    _require_status("volume", call.volume, {"attaching"}, "unreserving it")
    call.volume["status"] = "available"


def _os_attach(call: ActionCall) -> None:
    spec = _parse(Attach, call.argument, "os-attach")
    if not (spec.instance_uuid or spec.host_name):
        raise SimError(400, "os-attach needs instance_uuid or host_name.")
    _require_status("volume", call.volume, {"available", "attaching"}, "attaching it")
    _add_attachment(
        call.volume, server_id=spec.instance_uuid, host=spec.host_name, device=spec.mountpoint
    )


def _os_detach(call: ActionCall) -> None:
    wanted = _parse(Detach, call.argument, "os-detach").attachment_id
    if not _detach(call.volume, lambda a: wanted in (None, a["attachment_id"])):
        raise SimError(
            404,
            f"os-detach.attachment_id: volume {call.volume['id']} has no attachment "
            f"{wanted or ''}.",
        )


def _reset_status(call: ActionCall) -> None:
    authorize(call.caller, "admin")
    spec = _parse(ResetStatus, call.argument, "os-reset_status")
    if spec.status is not None:
        call.volume["status"] = spec.status
        call.volume.pop("_due", None)
    if spec.attach_status == "detached":
        call.volume["attachments"] = []
    if spec.migration_status is not None:
        call.volume["migration_status"] = spec.migration_status


VOLUME_ACTIONS: dict[str, Callable[[ActionCall], None]] = {
    "os-set_bootable": _set_bootable,
    "os-extend": _extend,
    "os-reserve": _reserve,
    "os-unreserve": _unreserve,
    "os-attach": _os_attach,
    "os-detach": _os_detach,
    "os-reset_status": _reset_status,
}


@volumes.post(
    "/volumes/{volume_id}/action", status_code=202, response_class=Response, summary="Act"
)
def volume_action(
    volume_id: str,
    body: Annotated[Json, Body()],
    response: Response,
    mv: CinderVersion,
    caller: Caller,
    site: SiteDep,
) -> None:
    action, argument = _single_action(body)
    if action not in VOLUME_ACTIONS:
        raise SimError(400, f"There is no such action: {action}.")
    with site.state.lock:
        volume = _load(site, caller, "volume", volume_id)
        VOLUME_ACTIONS[action](ActionCall(site, caller, volume, argument, mv))
        _save(site, "volume", volume)
    if action == "os-set_bootable":
        response.status_code = 200


# ---- volume types -------------------------------------------------------------------------

types = APIRouter()


@types.get("/types", summary="List volume types")
def list_types(_caller: Caller) -> Json:
    return {"volume_types": [DEFAULT_TYPE]}


@types.get("/types/{type_id}", summary="Show a volume type")
def show_type(type_id: str, _caller: Caller) -> Json:
    if type_id != DEFAULT_TYPE["id"]:
        raise SimError(404, f"Volume type {type_id} could not be found.")
    return {"volume_type": DEFAULT_TYPE}


# ---- snapshots ----------------------------------------------------------------------------


def _take_snapshot(site: Site, volume: Json, user_id: str | None, **fields: Any) -> Json:
    """Copy the volume's bytes into a new snapshot (the caller holds the state lock)."""
    project = volume["_project_id"]
    snapshot = _fresh(
        project,
        **{
            "name": None,
            "description": None,
            "metadata": {},
            "volume_id": volume["id"],
            "status": "creating",
            "size": volume["size"],
            "group_snapshot_id": None,
            "user_id": user_id,
            "consumes_quota": True,
            "os-extended-snapshot-attributes:progress": "100%",
            "os-extended-snapshot-attributes:project_id": project,
            **fields,
        },
        _due=_due(site),
        _bootable=volume["bootable"],
    )
    _sparse_copy(
        _data_file(site, "volume", volume["id"]),
        _data_file(site, "snapshot", snapshot["id"]),
        volume["size"] * GIB,
    )
    return _save(site, "snapshot", snapshot)


def _remove_snapshot(site: Site, snapshot: Json) -> None:
    site.state.delete("snapshot", snapshot["id"])
    _data_file(site, "snapshot", snapshot["id"]).unlink(missing_ok=True)


snapshots = APIRouter()


@snapshots.post("/snapshots", status_code=202, summary="Snapshot a volume")
def create_snapshot(body: SnapshotCreate, caller: Caller, site: SiteDep) -> Json:
    spec = body.snapshot
    with site.state.lock:
        volume = _load(site, caller, "volume", spec.volume_id, "snapshot.volume_id")
        allowed = {"available", "in-use"} if spec.force else {"available"}
        _require_status("volume", volume, allowed, "a snapshot (in-use needs force)")
        snapshot = _take_snapshot(
            site,
            volume,
            caller.user.id,
            name=spec.name,
            description=spec.description,
            metadata=spec.metadata or {},
        )
    return {"snapshot": public(snapshot)}


@snapshots.get("/snapshots", summary="List snapshots")
@snapshots.get("/snapshots/detail", summary="List snapshots with details")
def list_snapshots(query: ListingDep, caller: Caller, site: SiteDep) -> Json:
    return {"snapshots": [public(s) for s in _listing(site, caller, "snapshot", query)]}


@snapshots.get("/snapshots/{snapshot_id}", summary="Show a snapshot")
def show_snapshot(snapshot_id: str, caller: Caller, site: SiteDep) -> Json:
    return {"snapshot": public(_load(site, caller, "snapshot", snapshot_id))}


@snapshots.put("/snapshots/{snapshot_id}", summary="Update a snapshot")
def update_snapshot(snapshot_id: str, body: SnapshotUpdate, caller: Caller, site: SiteDep) -> Json:
    return {"snapshot": public(_changed(site, caller, "snapshot", snapshot_id, body.snapshot))}


@snapshots.delete(
    "/snapshots/{snapshot_id}", status_code=202, response_class=Response, summary="Delete"
)
def delete_snapshot(snapshot_id: str, caller: Caller, site: SiteDep) -> None:
    with site.state.lock:
        snapshot = _load(site, caller, "snapshot", snapshot_id)
        _require_status("snapshot", snapshot, {"available", "error"}, "deleting it")
        if snapshot["group_snapshot_id"]:
            raise SimError(
                409,
                f"Snapshot {snapshot_id} belongs to group snapshot "
                f"{snapshot['group_snapshot_id']}; delete the group snapshot instead.",
            )
        _remove_snapshot(site, snapshot)


# ---- group types, groups, group snapshots -------------------------------------------------


def _requires(minimum: Microversion) -> Any:
    def check(mv: CinderVersion) -> None:
        if mv < minimum:
            raise SimError(
                404,
                f"The resource could not be found: it needs OpenStack-API-Version: volume "
                f"{minimum} or later (this request used {mv}).",
            )

    return Depends(check)


def _group_types(site: Site) -> list[Json]:
    """Every group type; the default one is created the first time types are needed."""
    with site.state.lock:
        found_types = site.state.list("group_type")
        if not any(t["name"] == DEFAULT_GROUP_TYPE for t in found_types):
            default = _fresh(
                "",
                name=DEFAULT_GROUP_TYPE,
                description="Default group type",
                is_public=True,
                group_specs={},
            )
            found_types.append(_save(site, "group_type", default))
    return found_types


def _group_type(site: Site, reference: str, where: str = "") -> Json:
    for group_type in _group_types(site):
        if reference in (group_type["id"], group_type["name"]):
            return group_type
    raise SimError(404, f"Group type {reference} could not be found{where}.")


def _group_type_view(group_type: Json) -> Json:
    keys = ("id", "name", "description", "is_public", "group_specs")
    return {key: group_type[key] for key in keys}


group_types = APIRouter(dependencies=[_requires(Microversion(3, 11))])


@group_types.post("/group_types", summary="Create a group type (admin)")
def create_group_type(body: GroupTypeCreate, caller: Caller, site: SiteDep) -> Json:
    authorize(caller, "admin")
    spec = body.group_type
    with site.state.lock:
        if any(t["name"] == spec.name for t in _group_types(site)):
            raise SimError(409, f"group_type.name: group type {spec.name} already exists.")
        created = _save(site, "group_type", _fresh("", **spec.model_dump()))
    return {"group_type": _group_type_view(created)}


@group_types.get("/group_types", summary="List group types")
def list_group_types(_caller: Caller, site: SiteDep) -> Json:
    return {"group_types": [_group_type_view(t) for t in _group_types(site)]}


@group_types.get("/group_types/default", summary="Show the default group type")
def show_default_group_type(_caller: Caller, site: SiteDep) -> Json:
    return {"group_type": _group_type_view(_group_type(site, DEFAULT_GROUP_TYPE))}


@group_types.get("/group_types/{group_type_id}", summary="Show a group type")
def show_group_type(group_type_id: str, _caller: Caller, site: SiteDep) -> Json:
    return {"group_type": _group_type_view(_group_type(site, group_type_id))}


def _members(site: Site, group_id: str) -> list[Json]:
    return [
        _settled(site, "volume", v) for v in site.state.list("volume") if v["group_id"] == group_id
    ]


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _joining(site: Site, caller: AuthContext, group: Json, volume_id: str) -> Json:
    volume = _load(site, caller, "volume", volume_id, "add_volumes")
    if volume["group_id"] not in (None, group["id"]):
        raise SimError(
            409, f"add_volumes: volume {volume_id} already belongs to group {volume['group_id']}."
        )
    _require_status("volume", volume, {"available", "in-use"}, "joining a group")
    _check_type_allowed(group, _volume_type(volume["volume_type"], "add_volumes"), "add_volumes")
    return volume


def _leaving(site: Site, caller: AuthContext, group: Json, volume_id: str) -> Json:
    volume = _load(site, caller, "volume", volume_id, "remove_volumes")
    if volume["group_id"] != group["id"]:
        raise SimError(400, f"remove_volumes: volume {volume_id} is not in group {group['id']}.")
    return volume


def _update_group(site: Site, caller: AuthContext, group_id: str, changes: GroupChanges) -> None:
    with site.state.lock:
        group = _load(site, caller, "group", group_id)
        _require_status("group", group, {"available"}, "updating it")
        moves = [
            (v, group["id"])
            for v in (_joining(site, caller, group, i) for i in _csv(changes.add_volumes))
        ]
        moves += [
            (v, None)
            for v in (_leaving(site, caller, group, i) for i in _csv(changes.remove_volumes))
        ]
        for volume, member_of in moves:
            volume["group_id"] = member_of
            _save(site, "volume", volume)
        group.update(changes.model_dump(include={"name", "description"}, exclude_unset=True))
        _save(site, "group", group)


def _delete_group(site: Site, caller: AuthContext, group_id: str, deletion: GroupDeletion) -> None:
    with site.state.lock:
        group = _load(site, caller, "group", group_id)
        _require_status("group", group, {"available", "error"}, "deleting it")
        if any(s["group_id"] == group_id for s in site.state.list("group_snapshot")):
            raise SimError(409, f"Group {group_id} has group snapshots; delete them first.")
        members = _members(site, group_id)
        if members and not deletion.delete_volumes:
            raise SimError(
                409,
                f"Group {group_id} still has volumes; deleting it needs delete-volumes true.",
            )
        for volume in members:
            _check_deletable(site, volume)
        for volume in members:
            _remove_volume(site, volume)
        site.state.delete("group", group_id)


groups = APIRouter(dependencies=[_requires(Microversion(3, 13))])


@groups.post("/groups", status_code=202, summary="Create a group")
def create_group(body: GroupCreate, caller: Caller, site: SiteDep) -> Json:
    spec = body.group
    project = project_of(caller)
    _check_zone(spec.availability_zone, "group.availability_zone")
    group_type = _group_type(site, spec.group_type or DEFAULT_GROUP_TYPE, " (group.group_type)")
    type_ids = [
        _volume_type(reference, "group.volume_types")["id"]
        for reference in spec.volume_types or [DEFAULT_TYPE["id"]]
    ]
    group = _fresh(
        project,
        name=spec.name,
        description=spec.description,
        status="available",  # a group is only bookkeeping: nothing for a backend to build
        availability_zone=ZONE,
        group_type=group_type["id"],
        volume_types=type_ids,
        group_snapshot_id=None,
        source_group_id=None,
        replication_status="disabled",
        project_id=project,
    )
    _save(site, "group", group)
    return {"group": {"id": group["id"], "name": group["name"]}}


@groups.get("/groups", summary="List groups")
@groups.get("/groups/detail", summary="List groups with details")
def list_groups(request: Request, query: ListingDep, caller: Caller, site: SiteDep) -> Json:
    found_groups = _listing(site, caller, "group", query)
    if _detailed(request):
        return {"groups": [public(g) for g in found_groups]}
    return {"groups": [{"id": g["id"], "name": g["name"]} for g in found_groups]}


@groups.get("/groups/{group_id}", summary="Show a group")
def show_group(group_id: str, caller: Caller, site: SiteDep) -> Json:
    return {"group": public(_load(site, caller, "group", group_id))}


@groups.put(
    "/groups/{group_id}", status_code=202, response_class=Response, summary="Update a group"
)
def update_group(group_id: str, body: GroupUpdate, caller: Caller, site: SiteDep) -> None:
    _update_group(site, caller, group_id, body.group)


@groups.post(
    "/groups/{group_id}/action",
    status_code=202,
    response_class=Response,
    summary="Group action: delete (with delete-volumes) or update (add/remove volumes)",
)
def group_action(
    group_id: str, body: Annotated[Json, Body()], caller: Caller, site: SiteDep
) -> None:
    action, argument = _single_action(body)
    if action == "delete":
        _delete_group(site, caller, group_id, _parse(GroupDeletion, argument, "delete"))
    elif action == "update":
        _update_group(site, caller, group_id, _parse(GroupChanges, argument, "update"))
    else:
        raise SimError(400, f"There is no such action: {action}.")


group_snapshots = APIRouter(dependencies=[_requires(Microversion(3, 14))])


def _group_snapshot_summary(group_snapshot: Json) -> Json:
    keys = ("id", "name", "group_type_id")
    return {key: group_snapshot[key] for key in keys}


@group_snapshots.post("/group_snapshots", status_code=202, summary="Snapshot a group")
def create_group_snapshot(body: GroupSnapshotCreate, caller: Caller, site: SiteDep) -> Json:
    spec = body.group_snapshot
    with site.state.lock:  # every member is copied before any write can land
        group = _load(site, caller, "group", spec.group_id, "group_snapshot.group_id")
        _require_status("group", group, {"available"}, "a group snapshot")
        members = _members(site, group["id"])
        if not members:
            raise SimError(400, f"group_snapshot.group_id: group {group['id']} has no volumes.")
        for volume in members:
            _require_status("volume", volume, {"available", "in-use"}, "a group snapshot")
        group_snapshot = _fresh(
            group["_project_id"],
            name=spec.name,
            description=spec.description,
            group_id=group["id"],
            group_type_id=group["group_type"],
            status="creating",
            project_id=group["_project_id"],
            _due=_due(site),
        )
        for volume in members:
            _take_snapshot(site, volume, caller.user.id, group_snapshot_id=group_snapshot["id"])
        _save(site, "group_snapshot", group_snapshot)
    return {"group_snapshot": _group_snapshot_summary(group_snapshot)}


@group_snapshots.get("/group_snapshots", summary="List group snapshots")
@group_snapshots.get("/group_snapshots/detail", summary="List group snapshots with details")
def list_group_snapshots(
    request: Request, query: ListingDep, caller: Caller, site: SiteDep
) -> Json:
    found_snapshots = _listing(site, caller, "group_snapshot", query)
    view = public if _detailed(request) else _group_snapshot_summary
    return {"group_snapshots": [view(s) for s in found_snapshots]}


@group_snapshots.get("/group_snapshots/{group_snapshot_id}", summary="Show a group snapshot")
def show_group_snapshot(group_snapshot_id: str, caller: Caller, site: SiteDep) -> Json:
    return {"group_snapshot": public(_load(site, caller, "group_snapshot", group_snapshot_id))}


@group_snapshots.delete(
    "/group_snapshots/{group_snapshot_id}",
    status_code=202,
    response_class=Response,
    summary="Delete a group snapshot and its member snapshots",
)
def delete_group_snapshot(group_snapshot_id: str, caller: Caller, site: SiteDep) -> None:
    with site.state.lock:
        group_snapshot = _load(site, caller, "group_snapshot", group_snapshot_id)
        _require_status("group_snapshot", group_snapshot, {"available", "error"}, "deleting it")
        for snapshot in site.state.list("snapshot"):
            if snapshot["group_snapshot_id"] == group_snapshot_id:
                _remove_snapshot(site, snapshot)
        site.state.delete("group_snapshot", group_snapshot_id)


# ---- the backup store ---------------------------------------------------------------------

SHARED_FIELDS = (
    "id",
    "name",
    "description",
    "size",
    "volume_id",
    "snapshot_id",
    "is_incremental",
    "created_at",
    "data_timestamp",
    "metadata",
    "container",
    "availability_zone",
    "user_id",
    "object_count",
)


class InjectedFailure(Exception):
    """The ``backup_failure_at`` fault."""


def _store_dir(site: Site, backup_id: str) -> Path:
    return site.config.backup_store / backup_id


def _chunk_path(site: Site, backup_id: str, index: int) -> Path:
    return _store_dir(site, backup_id) / "chunks" / f"{index:08d}"


def _store_metadata(site: Site, backup_id: str) -> Json | None:
    """A finished backup's metadata in the store, or None."""
    if not STORE_ID.match(backup_id):
        return None
    try:
        metadata: Json = json.loads((_store_dir(site, backup_id) / "metadata.json").read_text())
    except FileNotFoundError:
        return None
    return metadata


def _store_chunks(site: Site, backup_id: str) -> list[Json | None]:
    chunks: list[Json | None] = json.loads(
        (_store_dir(site, backup_id) / "sha256.json").read_text()
    )["chunks"]
    return chunks


def _chain(site: Site, backup_id: str) -> list[Json]:
    """The metadata of the backup and of every backup it builds on, newest first; a
    LookupError if one of them is not in the store."""
    chain: list[Json] = []
    wanted: str | None = backup_id
    while wanted is not None:
        metadata = _store_metadata(site, wanted)
        if metadata is None:
            raise LookupError(f"backup {wanted} is not in the backup store")
        chain.append(metadata)
        wanted = metadata["parent_id"]
    return chain


def _dependents(site: Site) -> set[str]:
    """Ids of backups an incremental backup builds on, in the store or being written here."""
    parents = {b["_parent"] for b in site.state.list("backup") if b["status"] == "creating"}
    store = site.config.backup_store
    for directory in store.iterdir() if store.is_dir() else ():
        metadata = _store_metadata(site, directory.name)
        if metadata is not None:
            parents.add(metadata["parent_id"])
    return {parent for parent in parents if parent}


def _block_hashes(data: bytes, block: int = BLOCK) -> list[str]:
    view = memoryview(data)
    return [hashlib.sha256(view[i : i + block]).hexdigest() for i in range(0, len(data), block)]


def _chunk_data(fd: int, index: int) -> bytes | None:
    """Chunk ``index`` of an open file, or None when it holds only zeros (holes are not read)."""
    start = index * CHUNK
    if next(_extents(fd, start, start + CHUNK), None) is None:
        return None
    data = os.pread(fd, CHUNK, start)
    return None if data == ZEROS[: len(data)] else data


def _chunk_entry(
    site: Site, backup_id: str, index: int, data: bytes | None, inherited: Json | None
) -> Json | None:
    """The chunk list entry of ``data``: None for zeros, the parent's entry when every block
    equals the parent's at that position, else a new entry whose chunk is written to the store."""
    if data is None:
        return None
    hashes = _block_hashes(data)
    if inherited is not None and inherited["sha256"] == hashes:
        return inherited
    _chunk_path(site, backup_id, index).write_bytes(data)
    return {"owner": backup_id, "sha256": hashes}


def _write_chunks(
    site: Site, backup: Json, reader: Path, parent: list[Json | None], fail_at: float | None
) -> tuple[list[Json | None], int]:
    """Chunk the source into the store; returns the chunk list and how many chunks it stored."""
    total = backup["size"] * GIB
    count = total // CHUNK
    chunks: list[Json | None] = []
    stored = 0
    reported = time.monotonic()
    (_store_dir(site, backup["id"]) / "chunks").mkdir(parents=True, exist_ok=True)
    with reader.open("rb") as handle:
        for index in range(count):
            inherited = parent[index] if index < len(parent) else None
            entry = _chunk_entry(
                site, backup["id"], index, _chunk_data(handle.fileno(), index), inherited
            )
            if entry is not None and entry["owner"] == backup["id"]:
                stored += 1
            chunks.append(entry)
            done = (index + 1) * CHUNK
            if fail_at is not None and done >= fail_at * total:
                raise InjectedFailure(
                    f"injected fault: the backup failed after {done} of its {total} bytes "
                    f"(backup_failure_at={fail_at})"
                )
            if time.monotonic() - reported >= PROGRESS_EVERY:
                progress = f"{done * 100 // total}%"
                _update(site, "backup", backup["id"], progress=progress, object_count=stored)
                reported = time.monotonic()
    return chunks, stored


def _metadata(site: Site, backup: Json) -> Json:
    """What the store keeps of a finished backup, for any site to show and restore it."""
    return {
        **{key: backup[key] for key in SHARED_FIELDS},
        "format": 1,
        "site": site.config.name,
        "project_id": backup["_project_id"],
        "parent_id": backup["_parent"],
        "chunk_size": CHUNK,
        "block_size": BLOCK,
        "bootable": backup["_bootable"],
    }


def _imported(metadata: Json) -> Json:
    """The local record of a backup another site wrote to the shared store."""
    project = metadata["project_id"]
    return {
        **{key: metadata[key] for key in SHARED_FIELDS},
        "status": "available",
        "progress": "100%",
        "fail_reason": None,
        "updated_at": now_iso(),
        "os-backup-project-attr:project_id": project,
        "_project_id": project,
        "_created": time.time_ns(),
        "_parent": metadata["parent_id"],
        "_bootable": metadata["bootable"],
        "_imported_from": metadata["site"],
    }


def _end_backup(site: Site, backup_id: str, **fields: Any) -> None:
    """Record how a backup ended and give its source back the status it had before."""
    with site.state.lock:
        backup = _update(site, "backup", backup_id, **fields)
        if backup is None:
            return
        kind, source_id = backup["_source"]
        source = site.state.get(kind, source_id)
        if source is not None and source["status"] == "backing-up":
            source["status"] = source.pop("_previous_status", "available")
            _save(site, kind, source)


def _run_backup(site: Site, backup_id: str, fail_at: float | None) -> None:
    backup = site.state.get("backup", backup_id)
    if backup is None or backup["status"] != "creating":
        return
    kind, source_id = backup["_source"]
    staging = _data_file(site, "staging", backup_id)
    directory = _store_dir(site, backup_id)
    try:
        if kind == "volume":
            with site.state.lock:  # the point in time the backup holds
                _sparse_copy(_data_file(site, "volume", source_id), staging, backup["size"] * GIB)
        reader = staging if kind == "volume" else _data_file(site, "snapshot", source_id)
        parent = _store_chunks(site, backup["_parent"]) if backup["_parent"] else []
        chunks, backup["object_count"] = _write_chunks(site, backup, reader, parent, fail_at)
        _write_json(directory / "sha256.json", {"chunks": chunks})
        _write_json(directory / "metadata.json", _metadata(site, backup))
    except Exception as error:
        shutil.rmtree(directory, ignore_errors=True)
        reason = str(error) if isinstance(error, InjectedFailure) else repr(error)
        _end_backup(site, backup_id, status="error", fail_reason=reason)
    else:
        _end_backup(
            site,
            backup_id,
            status="available",
            progress="100%",
            object_count=backup["object_count"],
        )
    finally:
        staging.unlink(missing_ok=True)


def _remove_backup(site: Site, backup_id: str) -> None:
    """Remove a backup from the store and the site; its metadata goes first, so no site can
    import or restore it from then on."""
    directory = _store_dir(site, backup_id)
    (directory / "metadata.json").unlink(missing_ok=True)
    shutil.rmtree(directory, ignore_errors=True)
    site.state.delete("backup", backup_id)


def _backup(site: Site, caller: AuthContext, backup_id: str) -> Json:
    """A backup this site knows, or one it finds in the shared store (imported on first sight);
    a backup whose data left the store is marked error."""
    with site.state.lock:
        if site.state.get("backup", backup_id) is None:
            metadata = _store_metadata(site, backup_id)
            if metadata is not None and visible(caller, {"_project_id": metadata["project_id"]}):
                site.state.put("backup", _imported(metadata), metadata["project_id"])
        backup = _load(site, caller, "backup", backup_id)
        if backup["status"] == "available" and _store_metadata(site, backup_id) is None:
            backup.update(
                status="error", fail_reason="The backup is no longer in the backup store."
            )
            _save(site, "backup", backup)
    return backup


def _backup_view(site: Site, backup: Json, parents: set[str]) -> Json:
    return {
        **public(backup),
        "has_dependent_backups": backup["id"] in parents,
        "links": _links(site, "backups", backup["id"]),
    }


def _backup_source(
    site: Site, caller: AuthContext, spec: BackupSpec, volume: Json
) -> tuple[str, Json]:
    if spec.snapshot_id is None:
        allowed = {"available", "in-use"} if spec.force else {"available"}
        _require_status("volume", volume, allowed, "a backup (in-use needs force)")
        return "volume", volume
    snapshot = _load(site, caller, "snapshot", spec.snapshot_id, "backup.snapshot_id")
    if snapshot["volume_id"] != volume["id"]:
        raise SimError(
            400,
            f"backup.snapshot_id: snapshot {snapshot['id']} is not a snapshot of volume "
            f"{volume['id']}.",
        )
    _require_status("snapshot", snapshot, {"available"}, "a backup")
    return "snapshot", snapshot


def _parent_backup(site: Site, volume_id: str) -> Json:
    """The latest available backup of the volume, which an incremental backup builds on."""
    candidates = [
        b
        for b in site.state.list("backup")
        if b["volume_id"] == volume_id
        and b["status"] == "available"
        and _store_metadata(site, b["id"]) is not None
    ]
    if not candidates:
        raise SimError(
            400, f"backup.incremental: volume {volume_id} has no available backup to build on."
        )
    return max(candidates, key=lambda b: int(b["_created"]))


def _restore_target(site: Site, caller: AuthContext, spec: RestoreSpec, backup: Json) -> Json:
    if spec.volume_id is None:
        name = spec.name or f"restore_backup_{backup['id']}"
        return _new_volume(site, project_of(caller), caller.user.id, backup["size"], name=name)
    volume = _load(site, caller, "volume", spec.volume_id, "restore.volume_id")
    _require_status("volume", volume, {"available"}, "restoring a backup into it")
    if volume["size"] < backup["size"]:
        raise SimError(
            400,
            f"restore.volume_id: volume {volume['id']} ({volume['size']} GiB) is smaller than "
            f"backup {backup['id']} ({backup['size']} GiB).",
        )
    return volume


backups = APIRouter()


@backups.post("/backups", status_code=202, summary="Back up a volume or one of its snapshots")
def create_backup(body: BackupCreate, caller: Caller, site: SiteDep) -> Json:
    spec = body.backup
    _check_zone(spec.availability_zone, "backup.availability_zone")
    with site.state.lock:
        volume = _load(site, caller, "volume", spec.volume_id, "backup.volume_id")
        kind, source = _backup_source(site, caller, spec, volume)
        parent = _parent_backup(site, volume["id"]) if spec.incremental else None
        project = volume["_project_id"]
        backup = _fresh(
            project,
            **{
                "name": spec.name,
                "description": spec.description,
                "status": "creating",
                "size": source["size"],
                "object_count": 0,
                "progress": "0%",
                "availability_zone": ZONE,
                "container": spec.container or BACKUP_CONTAINER,
                "fail_reason": None,
                "volume_id": volume["id"],
                "snapshot_id": spec.snapshot_id,
                "is_incremental": parent is not None,
                "data_timestamp": source["created_at"] if kind == "snapshot" else now_iso(),
                "metadata": spec.metadata or {},
                "user_id": caller.user.id,
                "os-backup-project-attr:project_id": project,
            },
            _source=[kind, source["id"]],
            _parent=parent["id"] if parent else None,
            _bootable=_bootable_of(source),
        )
        source["_previous_status"] = source["status"]
        source["status"] = "backing-up"
        _save(site, kind, source)
        _save(site, "backup", backup)
        fail_at, site.faults.backup_failure_at = site.faults.backup_failure_at, None
    _submit(site, _run_backup, backup["id"], fail_at)
    return {"backup": _summary(site, "backups", backup)}


@backups.get("/backups", summary="List backups")
@backups.get("/backups/detail", summary="List backups with details")
def list_backups(request: Request, query: ListingDep, caller: Caller, site: SiteDep) -> Json:
    found_backups = _listing(site, caller, "backup", query)
    if not _detailed(request):
        return {"backups": [_summary(site, "backups", b) for b in found_backups]}
    parents = _dependents(site)
    return {"backups": [_backup_view(site, b, parents) for b in found_backups]}


@backups.get("/backups/{backup_id}", summary="Show a backup (imported from the store if need be)")
def show_backup(backup_id: str, caller: Caller, site: SiteDep) -> Json:
    return {"backup": _backup_view(site, _backup(site, caller, backup_id), _dependents(site))}


@backups.delete(
    "/backups/{backup_id}", status_code=202, response_class=Response, summary="Delete a backup"
)
def delete_backup(backup_id: str, caller: Caller, site: SiteDep) -> None:
    with site.state.lock:
        backup = _backup(site, caller, backup_id)
        _require_status("backup", backup, {"available", "error"}, "deleting it")
        if backup_id in _dependents(site):
            raise SimError(409, f"Backup {backup_id} has incremental backups built on it.")
        backup["status"] = "deleting"
        _save(site, "backup", backup)
    _remove_backup(site, backup_id)


@backups.post(
    "/backups/{backup_id}/restore", status_code=202, summary="Restore into a new or given volume"
)
def restore_backup(backup_id: str, body: RestoreRequest, caller: Caller, site: SiteDep) -> Json:
    spec = body.restore
    _check_zone(spec.availability_zone, "restore.availability_zone")
    with site.state.lock:
        backup = _backup(site, caller, backup_id)
        _require_status("backup", backup, {"available"}, "restoring it")
        try:
            _chain(site, backup_id)
        except LookupError as error:
            raise SimError(409, f"Backup {backup_id} cannot be restored: {error}.") from None
        volume = _restore_target(site, caller, spec, backup)
        volume.update(status="restoring-backup", _job={"kind": "restore", "source": backup_id})
        _save(site, "volume", volume)
        backup["status"] = "restoring"
        _save(site, "backup", backup)
    _submit(site, _run_volume_job, volume["id"])
    return {
        "restore": {
            "backup_id": backup_id,
            "volume_id": volume["id"],
            "volume_name": volume["name"],
        }
    }


# ---- filling volumes: image, snapshot, volume, backup -------------------------------------


def _fill_from_image(site: Site, volume: Json, image_id: str) -> Json:
    target = _data_file(site, "volume", volume["id"])
    _sparse_copy(_image_path(site, image_id), target, volume["size"] * GIB)
    return {"bootable": "true", "volume_image_metadata": {"image_id": image_id}}


def _fill_from_copy(site: Site, volume: Json, kind: str, source_id: str) -> Json:
    with site.state.lock:  # a point-in-time copy: no write lands while it is taken
        source = site.state.get(kind, source_id)
        if source is None:
            raise LookupError(f"{kind} {source_id} no longer exists")
        target = _data_file(site, "volume", volume["id"])
        _sparse_copy(_data_file(site, kind, source_id), target, volume["size"] * GIB)
    return {"bootable": _bootable_of(source)}


def _fill_from_backup(site: Site, volume: Json, backup_id: str) -> Json:
    """Write the backup's chunks (walking its chain) into the volume, verifying every block."""
    chain = _chain(site, backup_id)
    owners = {metadata["id"] for metadata in chain}
    chunk_size, block = chain[0]["chunk_size"], chain[0]["block_size"]
    with _replacing(_data_file(site, "volume", volume["id"]), volume["size"] * GIB) as fd:
        for index, entry in enumerate(_store_chunks(site, backup_id)):
            if entry is None:
                continue
            if entry["owner"] not in owners:
                raise ValueError(f"chunk {index} names backup {entry['owner']}, not in the chain")
            data = _chunk_path(site, entry["owner"], index).read_bytes()
            if _block_hashes(data, block) != entry["sha256"]:
                raise ValueError(f"chunk {index} of backup {entry['owner']} fails its sha256 check")
            os.pwrite(fd, data, index * chunk_size)
    return {"bootable": chain[0]["bootable"]}


def _fill(site: Site, volume: Json, job: Json) -> Json:
    if job["kind"] == "image":
        return _fill_from_image(site, volume, job["source"])
    if job["kind"] == "restore":
        return _fill_from_backup(site, volume, job["source"])
    return _fill_from_copy(site, volume, job["kind"], job["source"])


def _run_volume_job(site: Site, volume_id: str) -> None:
    volume = site.state.get("volume", volume_id)
    if volume is None or "_job" not in volume:
        return
    job = volume["_job"]
    try:
        fields = {"status": "available", **_fill(site, volume, job)}
    except Exception as error:
        log.warning("filling volume %s from %s %s failed: %r", volume_id, *job.values(), error)
        fields = {"status": "error_restoring" if job["kind"] == "restore" else "error"}
    with site.state.lock:
        current = site.state.get("volume", volume_id)
        if current is not None:
            current.pop("_job", None)
            current.update(fields)
            _save(site, "volume", current)
        if job["kind"] == "restore":
            _update(site, "backup", job["source"], status="available")


# ---- manage by reference ------------------------------------------------------------------

# not gated at 3.8 as Cinder does: openstacksdk lists manageable volumes without a microversion
manageable = APIRouter()


@manageable.get("/manageable_volumes", summary="Volumes on the backend Cinder could adopt (admin)")
@manageable.get("/manageable_volumes/detail", summary="The same, with details (admin)")
def list_manageable(request: Request, caller: Caller, site: SiteDep) -> Json:
    authorize(caller, "admin")
    entries = []
    for path in sorted(_unmanaged_dir(site).iterdir()):
        if not path.is_file() or path.name.endswith(".part"):
            continue
        linked = path.stat().st_nlink > 1  # being adopted right now
        entry: Json = {
            "reference": {"source-name": path.name},
            "size": _gib(path.stat().st_size),
            "safe_to_manage": not linked,
        }
        if _detailed(request):
            reason = "already being managed" if linked else None
            entry |= {"reason_not_safe": reason, "cinder_id": None, "extra_info": None}
        entries.append(entry)
    return {"manageable-volumes": entries}


@manageable.post("/manageable_volumes", status_code=202, summary="Adopt a volume (admin)")
def manage_volume(body: ManageRequest, caller: Caller, site: SiteDep) -> Json:
    authorize(caller, "admin")
    spec = body.volume
    _check_zone(spec.availability_zone, "volume.availability_zone")
    volume_type = _volume_type(spec.volume_type, "volume.volume_type")
    source = _unmanaged_dir(site) / spec.ref.source_name
    with site.state.lock:
        if not source.is_file():
            raise SimError(
                400, f"volume.ref.source-name: no unmanaged volume {spec.ref.source_name!r} here."
            )
        if source.stat().st_nlink > 1:
            raise SimError(409, f"volume.ref.source-name: {source.name} is already being managed.")
        volume = _new_volume(
            site,
            project_of(caller),
            caller.user.id,
            _gib(source.stat().st_size),
            name=spec.name,
            description=spec.description,
            metadata=spec.metadata or {},
            volume_type=volume_type["name"],
            bootable=str(spec.bootable).lower(),
            _due=_due(site),
            **{"os-vol-host-attr:host": spec.host},
        )
        target = _data_file(site, "volume", volume["id"])
        os.link(source, target)  # linked, recorded, unlinked: a crash leaves both names usable
        os.truncate(target, volume["size"] * GIB)
        _save(site, "volume", volume)
        source.unlink()
    return {"volume": _volume_view(site, volume)}


# ---- for Nova -----------------------------------------------------------------------------


def _owned_volume(site: Site, volume_id: str, project_id: str | None) -> Json:
    volume = site.state.get("volume", volume_id)
    if volume is None or project_id not in (None, volume["_project_id"]):
        raise SimError(404, f"Volume {volume_id} could not be found.")
    return _settled(site, "volume", volume)


def attach_volume(
    site: Site, volume_id: str, *, server_id: str, host: str, device: str, project_id: str | None
) -> dict[str, Any]:
    """Attach an available volume (of ``project_id``; None: any) to a server; returns Nova's
    volumeAttachment."""
    recover(site)
    with site.state.lock:
        volume = _owned_volume(site, volume_id, project_id)
        _require_status("volume", volume, {"available"}, "attaching it")
        _add_attachment(volume, server_id=server_id, host=host, device=device)
        _save(site, "volume", volume)
    return {"id": volume_id, "volumeId": volume_id, "serverId": server_id, "device": device}


def detach_volume(site: Site, volume_id: str, server_id: str) -> None:
    """Remove the volume's attachments to the server; nothing to do if there are none."""
    recover(site)
    with site.state.lock:
        volume = site.state.get("volume", volume_id)
        if volume is not None and _detach(volume, lambda a: a["server_id"] == server_id):
            _save(site, "volume", volume)


def create_boot_volume(site: Site, project_id: str, image_id: str, size_gb: int, name: str) -> str:
    """A bootable volume holding the image's bytes, available as soon as they are copied."""
    recover(site)
    size = _size(
        size_gb, Source("image", image_id, _gib(_image_path(site, image_id).stat().st_size))
    )
    volume = _new_volume(site, project_id, None, size, name=name)
    volume.update(_fill_from_image(site, volume, image_id), status="available")
    _save(site, "volume", volume)
    return str(volume["id"])


# ---- crash recovery -----------------------------------------------------------------------


def _finish_adoptions(site: Site) -> None:
    """A manage interrupted between linking the file and unlinking its unmanaged name keeps
    whichever name the site recorded."""
    linked = {
        path.stat().st_ino: path
        for path in _unmanaged_dir(site).iterdir()
        if path.is_file() and path.stat().st_nlink > 1
    }
    for adopted in _area(site, "volume").glob("*.img") if linked else ():
        source = linked.get(adopted.stat().st_ino)
        if source is not None:
            recorded = site.state.get("volume", adopted.stem) is not None
            (source if recorded else adopted).unlink()


_RECOVERED: weakref.WeakSet[Site] = weakref.WeakSet()
_RECOVERED_LOCK = threading.Lock()


def recover(site: Site) -> None:
    """Resume or fail what a killed site-sim left mid-flight (once per Site): copies into
    volumes being created or restored are redone from the start; backups that were running
    are marked error, their partial chunks removed; interrupted backup deletions finish."""
    with _RECOVERED_LOCK:
        if site in _RECOVERED:
            return
        _RECOVERED.add(site)
    for area in AREAS:
        for leftover in _area(site, area).glob("*.part"):
            leftover.unlink(missing_ok=True)
    for staged in _area(site, "staging").glob("*.img"):
        staged.unlink(missing_ok=True)
    _finish_adoptions(site)
    for backup in site.state.list("backup"):
        if backup["status"] == "creating":
            shutil.rmtree(_store_dir(site, backup["id"]), ignore_errors=True)
            reason = "The site-sim stopped while this backup ran; its partial data was removed."
            _end_backup(site, backup["id"], status="error", fail_reason=reason)
        elif backup["status"] == "deleting":
            _remove_backup(site, backup["id"])
    restoring = set()
    for volume in site.state.list("volume"):
        if "_job" in volume:
            _submit(site, _run_volume_job, volume["id"])
            if volume["_job"]["kind"] == "restore":
                restoring.add(volume["_job"]["source"])
    for backup in site.state.list("backup"):
        if backup["status"] == "restoring" and backup["id"] not in restoring:
            _update(site, "backup", backup["id"], status="available")


# ---- /sim/v1: a volume's bytes ------------------------------------------------------------


def _recovered(site: SiteDep) -> None:
    recover(site)


sim = APIRouter(prefix="/sim/v1/volumes", tags=["sim volumes"], dependencies=[Depends(_recovered)])


def _io_volume(site: Site, caller: AuthContext, volume_id: str, offset: int, length: int) -> Json:
    volume = _load(site, caller, "volume", volume_id)
    _require_status("volume", volume, IO_STATUSES, "reading or writing its data")
    end = volume["size"] * GIB
    if offset + length > end:
        raise SimError(
            400,
            f"offset {offset} + length {length} is beyond the end of volume {volume_id} "
            f"({end} bytes).",
        )
    return volume


def _refuse_if_frozen(site: Site, volume: Json) -> None:
    for attachment in volume["attachments"]:
        server = site.state.get("server", attachment["server_id"] or "")
        if server is not None and server.get("_frozen"):
            raise SimError(
                409,
                f"Volume {volume['id']} is attached to server {server['id']}, which is "
                "quiesced: writes are refused until it is unquiesced.",
            )


def _write_bytes(site: Site, caller: AuthContext, volume_id: str, offset: int, data: bytes) -> None:
    with site.state.lock:  # so that a group snapshot sees no write between its copies
        volume = _io_volume(site, caller, volume_id, offset, len(data))
        _refuse_if_frozen(site, volume)
        fd = os.open(_data_file(site, "volume", volume_id), os.O_WRONLY)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)


@sim.put(
    "/{volume_id}/data", status_code=204, response_class=Response, summary="Write bytes at offset"
)
async def write_volume_data(
    volume_id: str,
    request: Request,
    caller: Caller,
    site: SiteDep,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> None:
    data = await request.body()
    await run_in_threadpool(_write_bytes, site, caller, volume_id, offset, data)


@sim.get("/{volume_id}/data", response_class=Response, summary="Read length bytes at offset")
def read_volume_data(
    volume_id: str,
    caller: Caller,
    site: SiteDep,
    length: Annotated[int, Query(ge=0, le=MAX_READ)],
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    _io_volume(site, caller, volume_id, offset, length)
    with _data_file(site, "volume", volume_id).open("rb") as handle:
        data = os.pread(handle.fileno(), length, offset)
    return Response(data, media_type="application/octet-stream")


@sim.get("/{volume_id}/checksum", summary="sha256 of the whole volume")
def volume_checksum(volume_id: str, caller: Caller, site: SiteDep) -> Json:
    volume = _io_volume(site, caller, volume_id, 0, 0)
    return {"sha256": _sha256(_data_file(site, "volume", volume_id)), "size": volume["size"] * GIB}


# ---- routers ------------------------------------------------------------------------------


def _version_doc(request: Request) -> Json:
    base = str(request.base_url).rstrip("/")
    return {
        "id": "v3.0",
        "status": "CURRENT",
        "version": str(CINDER.maximum),
        "min_version": str(CINDER.minimum),
        "updated": "2023-05-12T00:00:00Z",
        "links": [
            {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
            {"rel": "self", "href": f"{base}/volume/v3/"},
        ],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}
        ],
    }


versions = APIRouter(prefix="/volume", tags=["volume"])


@versions.get("/", status_code=300, summary="Block storage API versions")
def list_versions(request: Request, _mv: CinderVersion) -> Json:
    return {"versions": [_version_doc(request)]}


@versions.get("/v3", summary="Block storage v3 version document")
@versions.get("/v3/", include_in_schema=False)
def show_version(request: Request, _mv: CinderVersion) -> Json:
    return {"version": _version_doc(request)}


def _prepare(_recovery: Annotated[None, Depends(_recovered)], _mv: CinderVersion) -> None:
    """Before every Cinder request: recovery done, the microversion negotiated and echoed."""


def _url_project(project_id: str, caller: Caller) -> None:
    if caller.project is None or caller.project.id != project_id:
        raise SimError(
            400, f"Malformed request URL: project_id {project_id} is not the token's project."
        )


def _mounted(prefix: str, *checks: Any, in_schema: bool = True) -> APIRouter:
    mounted = APIRouter(prefix=prefix, tags=["volume"], dependencies=[Depends(_prepare), *checks])
    for part in (volumes, types, snapshots, group_types, groups, group_snapshots, backups):
        mounted.include_router(part, include_in_schema=in_schema)
    mounted.include_router(manageable, include_in_schema=in_schema)
    return mounted


def routers() -> list[APIRouter]:
    return [
        versions,
        _mounted("/volume/v3"),
        _mounted("/volume/v3/{project_id}", Depends(_url_project), in_schema=False),
        sim,
    ]
