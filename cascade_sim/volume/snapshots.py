"""Snapshots: a point-in-time copy of a volume's bytes (taken under the state lock, so no
write lands while it is copied; a replicated volume's snapshot is shipped to its replica,
see ``replication``), and create, list, show, update and delete at
``/snapshots``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from cascade.api.keystone import Caller
from cascade_sim.common import RegionDep, public
from cascade_sim.errors import SimError
from cascade_sim.region import Region
from cascade_sim.volume.bodies import Changes, Metadata, Strict, Text
from cascade_sim.volume.disk import GIB, data_file, sparse_copy
from cascade_sim.volume.records import (
    Json,
    ListingDep,
    changed,
    discard,
    due_at,
    fresh,
    listing,
    load,
    require_status,
    save,
)
from cascade_sim.volume.replication import ship
from cascade_sim.volume.tracking import record_snapshot
from cascade_sim.volume.volumes import require_copyable


class SnapshotSpec(Strict):
    volume_id: str
    force: bool = False
    name: Text | None = None
    description: Text | None = None
    metadata: Metadata | None = None


class SnapshotCreate(Strict):
    snapshot: SnapshotSpec


class SnapshotUpdate(Strict):
    snapshot: Changes


def take_snapshot(site: Region, volume: Json, user_id: str | None, **fields: Any) -> Json:
    """Copy the volume's bytes into a new snapshot, which keeps the volume's changed-block
    map as of now (the caller holds the state lock)."""
    project = volume["_project_id"]
    snapshot = fresh(
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
        _due=due_at(site),
        _bootable=volume["bootable"],
    )
    sparse_copy(
        data_file(site, "volume", volume["id"]),
        data_file(site, "snapshot", snapshot["id"]),
        volume["size"] * GIB,
    )
    record_snapshot(volume, snapshot)
    ship(site, volume, snapshot)
    save(site, "volume", volume)
    return save(site, "snapshot", snapshot)


snapshots = APIRouter()


@snapshots.post("/snapshots", status_code=202, summary="Snapshot a volume")
def create_snapshot(body: SnapshotCreate, caller: Caller, site: RegionDep) -> Json:
    spec = body.snapshot
    with site.state.lock:
        volume = load(site, caller, "volume", spec.volume_id, "snapshot.volume_id")
        require_copyable(volume, spec.force, "a snapshot")
        snapshot = take_snapshot(
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
def list_snapshots(query: ListingDep, caller: Caller, site: RegionDep) -> Json:
    return {"snapshots": [public(s) for s in listing(site, caller, "snapshot", query)]}


@snapshots.get("/snapshots/{snapshot_id}", summary="Show a snapshot")
def show_snapshot(snapshot_id: str, caller: Caller, site: RegionDep) -> Json:
    return {"snapshot": public(load(site, caller, "snapshot", snapshot_id))}


@snapshots.put("/snapshots/{snapshot_id}", summary="Update a snapshot")
def update_snapshot(
    snapshot_id: str, body: SnapshotUpdate, caller: Caller, site: RegionDep
) -> Json:
    return {"snapshot": public(changed(site, caller, "snapshot", snapshot_id, body.snapshot))}


@snapshots.delete(
    "/snapshots/{snapshot_id}", status_code=202, response_class=Response, summary="Delete"
)
def delete_snapshot(snapshot_id: str, caller: Caller, site: RegionDep) -> None:
    with site.state.lock:
        snapshot = load(site, caller, "snapshot", snapshot_id)
        require_status("snapshot", snapshot, {"available", "error"}, "deleting it")
        if snapshot["group_snapshot_id"]:
            raise SimError(
                409,
                f"Snapshot {snapshot_id} belongs to group snapshot "
                f"{snapshot['group_snapshot_id']}; delete the group snapshot instead.",
            )
        discard(site, "snapshot", snapshot["id"])
