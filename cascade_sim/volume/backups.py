"""Backups: create a full or incremental backup of a volume or of one of its snapshots (the
writing runs as a job, see ``backup_store``), list, show, delete, and restore into a new or
a given volume. A site shown a backup it does not know, which another site wrote to the
shared store, imports it on first sight."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from cascade.api.keystone import Caller
from cascade.identity import AuthContext
from cascade_sim.common import RegionDep, project_of, public, visible
from cascade_sim.errors import SimError
from cascade_sim.region import Region
from cascade_sim.state import now_iso
from cascade_sim.volume.backup_store import (
    backup_chain,
    dependents,
    imported,
    remove_backup,
    run_backup,
    store_metadata,
)
from cascade_sim.volume.bodies import Metadata, Strict, Text
from cascade_sim.volume.fill import run_volume_job
from cascade_sim.volume.jobs import submit
from cascade_sim.volume.records import (
    ZONE,
    Json,
    ListingDep,
    bootable_of,
    check_zone,
    detailed,
    fresh,
    links,
    listing,
    load,
    require_status,
    save,
    summary,
)
from cascade_sim.volume.volumes import new_volume, require_copyable

BACKUP_CONTAINER = "volumebackups"


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


def _find_backup(site: Region, caller: AuthContext, backup_id: str) -> Json:
    """A backup this site knows, or one it finds in the shared store (imported on first sight);
    a backup whose data left the store is marked error."""
    with site.state.lock:
        if site.state.get("backup", backup_id) is None:
            metadata = store_metadata(site, backup_id)
            if metadata is not None and visible(caller, {"_project_id": metadata["project_id"]}):
                site.state.put("backup", imported(metadata), metadata["project_id"])
        backup = load(site, caller, "backup", backup_id)
        if backup["status"] == "available" and store_metadata(site, backup_id) is None:
            backup.update(
                status="error", fail_reason="The backup is no longer in the backup store."
            )
            save(site, "backup", backup)
    return backup


def _backup_view(site: Region, backup: Json, parents: set[str]) -> Json:
    return {
        **public(backup),
        "has_dependent_backups": backup["id"] in parents,
        "links": links(site, "backups", backup["id"]),
    }


def _backup_source(
    site: Region, caller: AuthContext, spec: BackupSpec, volume: Json
) -> tuple[str, Json]:
    if spec.snapshot_id is None:
        require_copyable(volume, spec.force, "a backup")
        return "volume", volume
    snapshot = load(site, caller, "snapshot", spec.snapshot_id, "backup.snapshot_id")
    if snapshot["volume_id"] != volume["id"]:
        raise SimError(
            400,
            f"backup.snapshot_id: snapshot {snapshot['id']} is not a snapshot of volume "
            f"{volume['id']}.",
        )
    require_status("snapshot", snapshot, {"available"}, "a backup")
    return "snapshot", snapshot


def _parent_backup(site: Region, volume_id: str) -> Json:
    """The latest available backup of the volume, which an incremental backup builds on."""
    candidates = [
        b
        for b in site.state.list("backup")
        if b["volume_id"] == volume_id
        and b["status"] == "available"
        and store_metadata(site, b["id"]) is not None
    ]
    if not candidates:
        raise SimError(
            400, f"backup.incremental: volume {volume_id} has no available backup to build on."
        )
    return max(candidates, key=lambda b: int(b["_created"]))


def _restore_target(site: Region, caller: AuthContext, spec: RestoreSpec, backup: Json) -> Json:
    if spec.volume_id is None:
        name = spec.name or f"restore_backup_{backup['id']}"
        return new_volume(site, project_of(caller), caller.user.id, backup["size"], name=name)
    volume = load(site, caller, "volume", spec.volume_id, "restore.volume_id")
    require_status("volume", volume, {"available"}, "restoring a backup into it")
    if volume["size"] < backup["size"]:
        raise SimError(
            400,
            f"restore.volume_id: volume {volume['id']} ({volume['size']} GiB) is smaller than "
            f"backup {backup['id']} ({backup['size']} GiB).",
        )
    return volume


backups = APIRouter()


@backups.post("/backups", status_code=202, summary="Back up a volume or one of its snapshots")
def create_backup(body: BackupCreate, caller: Caller, site: RegionDep) -> Json:
    spec = body.backup
    check_zone(spec.availability_zone, "backup.availability_zone")
    with site.state.lock:
        volume = load(site, caller, "volume", spec.volume_id, "backup.volume_id")
        kind, source = _backup_source(site, caller, spec, volume)
        parent = _parent_backup(site, volume["id"]) if spec.incremental else None
        project = volume["_project_id"]
        backup = fresh(
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
            _bootable=bootable_of(source),
        )
        source["_previous_status"] = source["status"]
        source["status"] = "backing-up"
        save(site, kind, source)
        save(site, "backup", backup)
        fail_at, site.faults.backup_failure_at = site.faults.backup_failure_at, None
    submit(site, run_backup, backup["id"], fail_at)
    return {"backup": summary(site, "backups", backup)}


@backups.get("/backups", summary="List backups")
@backups.get("/backups/detail", summary="List backups with details")
def list_backups(request: Request, query: ListingDep, caller: Caller, site: RegionDep) -> Json:
    found_backups = listing(site, caller, "backup", query)
    if not detailed(request):
        return {"backups": [summary(site, "backups", b) for b in found_backups]}
    parents = dependents(site)
    return {"backups": [_backup_view(site, b, parents) for b in found_backups]}


@backups.get("/backups/{backup_id}", summary="Show a backup (imported from the store if need be)")
def show_backup(backup_id: str, caller: Caller, site: RegionDep) -> Json:
    return {"backup": _backup_view(site, _find_backup(site, caller, backup_id), dependents(site))}


@backups.delete(
    "/backups/{backup_id}", status_code=202, response_class=Response, summary="Delete a backup"
)
def delete_backup(backup_id: str, caller: Caller, site: RegionDep) -> None:
    with site.state.lock:
        backup = _find_backup(site, caller, backup_id)
        require_status("backup", backup, {"available", "error"}, "deleting it")
        if backup_id in dependents(site):
            raise SimError(409, f"Backup {backup_id} has incremental backups built on it.")
        backup["status"] = "deleting"
        save(site, "backup", backup)
    remove_backup(site, backup_id)


@backups.post(
    "/backups/{backup_id}/restore", status_code=202, summary="Restore into a new or given volume"
)
def restore_backup(backup_id: str, body: RestoreRequest, caller: Caller, site: RegionDep) -> Json:
    spec = body.restore
    check_zone(spec.availability_zone, "restore.availability_zone")
    with site.state.lock:
        backup = _find_backup(site, caller, backup_id)
        require_status("backup", backup, {"available"}, "restoring it")
        try:
            backup_chain(site, backup_id)
        except LookupError as error:
            raise SimError(409, f"Backup {backup_id} cannot be restored: {error}.") from None
        volume = _restore_target(site, caller, spec, backup)
        volume.update(status="restoring-backup", _job={"kind": "restore", "source": backup_id})
        save(site, "volume", volume)
        backup["status"] = "restoring"
        save(site, "backup", backup)
    submit(site, run_volume_job, volume["id"])
    return {
        "restore": {
            "backup_id": backup_id,
            "volume_id": volume["id"],
            "volume_name": volume["name"],
        }
    }
