"""Groups (microversion 3.13 on) and group snapshots (3.14 on): a group is bookkeeping over
volumes of the types it takes; a group snapshot snapshots every member at one point in time
(under the state lock, so no write lands between two of its copies)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response
from pydantic import Field

from cascade.api.keystone import Caller
from cascade.identity import AuthContext
from cascade_sim.common import RegionDep, project_of, public
from cascade_sim.errors import SimError
from cascade_sim.microversions import Microversion
from cascade_sim.region import Region
from cascade_sim.volume.bodies import Strict, Text, parse, single_action
from cascade_sim.volume.group_types import DEFAULT_GROUP_TYPE, find_group_type
from cascade_sim.volume.records import (
    ZONE,
    Json,
    ListingDep,
    check_zone,
    detailed,
    discard,
    due_at,
    fresh,
    listing,
    load,
    require_status,
    save,
    settled,
)
from cascade_sim.volume.snapshots import take_snapshot
from cascade_sim.volume.versions import requires
from cascade_sim.volume.volume_types import (
    DEFAULT_TYPE,
    check_type_allowed,
    find_volume_type,
)
from cascade_sim.volume.volumes import check_deletable


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


def _members(site: Region, group_id: str) -> list[Json]:
    return [
        settled(site, "volume", v) for v in site.state.list("volume") if v["group_id"] == group_id
    ]


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _joining(site: Region, caller: AuthContext, group: Json, volume_id: str) -> Json:
    volume = load(site, caller, "volume", volume_id, "add_volumes")
    if volume["group_id"] not in (None, group["id"]):
        raise SimError(
            409, f"add_volumes: volume {volume_id} already belongs to group {volume['group_id']}."
        )
    require_status("volume", volume, {"available", "in-use"}, "joining a group")
    volume_type = find_volume_type(site, volume["volume_type"], "add_volumes")
    check_type_allowed(group, volume_type, "add_volumes")
    return volume


def _leaving(site: Region, caller: AuthContext, group: Json, volume_id: str) -> Json:
    volume = load(site, caller, "volume", volume_id, "remove_volumes")
    if volume["group_id"] != group["id"]:
        raise SimError(400, f"remove_volumes: volume {volume_id} is not in group {group['id']}.")
    return volume


def _update_group(site: Region, caller: AuthContext, group_id: str, changes: GroupChanges) -> None:
    with site.state.lock:
        group = load(site, caller, "group", group_id)
        require_status("group", group, {"available"}, "updating it")
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
            save(site, "volume", volume)
        group.update(changes.model_dump(include={"name", "description"}, exclude_unset=True))
        save(site, "group", group)


def _delete_group(
    site: Region, caller: AuthContext, group_id: str, deletion: GroupDeletion
) -> None:
    with site.state.lock:
        group = load(site, caller, "group", group_id)
        require_status("group", group, {"available", "error"}, "deleting it")
        if any(s["group_id"] == group_id for s in site.state.list("group_snapshot")):
            raise SimError(409, f"Group {group_id} has group snapshots; delete them first.")
        members = _members(site, group_id)
        if members and not deletion.delete_volumes:
            raise SimError(
                409,
                f"Group {group_id} still has volumes; deleting it needs delete-volumes true.",
            )
        for volume in members:
            check_deletable(site, volume)
        for volume in members:
            discard(site, "volume", volume["id"])
        site.state.delete("group", group_id)


def _group_summary(group: Json) -> Json:
    return {"id": group["id"], "name": group["name"]}


groups = APIRouter(dependencies=[requires(Microversion(3, 13))])


@groups.post("/groups", status_code=202, summary="Create a group")
def create_group(body: GroupCreate, caller: Caller, site: RegionDep) -> Json:
    spec = body.group
    project = project_of(caller)
    check_zone(spec.availability_zone, "group.availability_zone")
    group_type = find_group_type(site, spec.group_type or DEFAULT_GROUP_TYPE, " (group.group_type)")
    type_ids = [
        find_volume_type(site, reference, "group.volume_types")["id"]
        for reference in spec.volume_types or [DEFAULT_TYPE["id"]]
    ]
    group = fresh(
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
    save(site, "group", group)
    return {"group": _group_summary(group)}


@groups.get("/groups", summary="List groups")
@groups.get("/groups/detail", summary="List groups with details")
def list_groups(request: Request, query: ListingDep, caller: Caller, site: RegionDep) -> Json:
    view = public if detailed(request) else _group_summary
    return {"groups": [view(g) for g in listing(site, caller, "group", query)]}


@groups.get("/groups/{group_id}", summary="Show a group")
def show_group(group_id: str, caller: Caller, site: RegionDep) -> Json:
    return {"group": public(load(site, caller, "group", group_id))}


@groups.put(
    "/groups/{group_id}", status_code=202, response_class=Response, summary="Update a group"
)
def update_group(group_id: str, body: GroupUpdate, caller: Caller, site: RegionDep) -> None:
    _update_group(site, caller, group_id, body.group)


@groups.post(
    "/groups/{group_id}/action",
    status_code=202,
    response_class=Response,
    summary="Group action: delete (with delete-volumes) or update (add/remove volumes)",
)
def group_action(
    group_id: str, body: Annotated[Json, Body()], caller: Caller, site: RegionDep
) -> None:
    action, argument = single_action(body)
    if action == "delete":
        _delete_group(site, caller, group_id, parse(GroupDeletion, argument, "delete"))
    elif action == "update":
        _update_group(site, caller, group_id, parse(GroupChanges, argument, "update"))
    else:
        raise SimError(400, f"There is no such action: {action}.")


group_snapshots = APIRouter(dependencies=[requires(Microversion(3, 14))])


def _group_snapshot_summary(group_snapshot: Json) -> Json:
    keys = ("id", "name", "group_type_id")
    return {key: group_snapshot[key] for key in keys}


@group_snapshots.post("/group_snapshots", status_code=202, summary="Snapshot a group")
def create_group_snapshot(body: GroupSnapshotCreate, caller: Caller, site: RegionDep) -> Json:
    spec = body.group_snapshot
    with site.state.lock:  # every member is copied before any write can land
        group = load(site, caller, "group", spec.group_id, "group_snapshot.group_id")
        require_status("group", group, {"available"}, "a group snapshot")
        members = _members(site, group["id"])
        if not members:
            raise SimError(400, f"group_snapshot.group_id: group {group['id']} has no volumes.")
        for volume in members:
            require_status("volume", volume, {"available", "in-use"}, "a group snapshot")
        group_snapshot = fresh(
            group["_project_id"],
            name=spec.name,
            description=spec.description,
            group_id=group["id"],
            group_type_id=group["group_type"],
            status="creating",
            project_id=group["_project_id"],
            _due=due_at(site),
        )
        for volume in members:
            take_snapshot(site, volume, caller.user.id, group_snapshot_id=group_snapshot["id"])
        save(site, "group_snapshot", group_snapshot)
    return {"group_snapshot": _group_snapshot_summary(group_snapshot)}


@group_snapshots.get("/group_snapshots", summary="List group snapshots")
@group_snapshots.get("/group_snapshots/detail", summary="List group snapshots with details")
def list_group_snapshots(
    request: Request, query: ListingDep, caller: Caller, site: RegionDep
) -> Json:
    view = public if detailed(request) else _group_snapshot_summary
    return {"group_snapshots": [view(s) for s in listing(site, caller, "group_snapshot", query)]}


@group_snapshots.get("/group_snapshots/{group_snapshot_id}", summary="Show a group snapshot")
def show_group_snapshot(group_snapshot_id: str, caller: Caller, site: RegionDep) -> Json:
    return {"group_snapshot": public(load(site, caller, "group_snapshot", group_snapshot_id))}


@group_snapshots.delete(
    "/group_snapshots/{group_snapshot_id}",
    status_code=202,
    response_class=Response,
    summary="Delete a group snapshot and its member snapshots",
)
def delete_group_snapshot(group_snapshot_id: str, caller: Caller, site: RegionDep) -> None:
    with site.state.lock:
        group_snapshot = load(site, caller, "group_snapshot", group_snapshot_id)
        require_status("group_snapshot", group_snapshot, {"available", "error"}, "deleting it")
        for snapshot in site.state.list("snapshot"):
            if snapshot["group_snapshot_id"] == group_snapshot_id:
                discard(site, "snapshot", snapshot["id"])
        site.state.delete("group_snapshot", group_snapshot_id)
