"""The volume calls protection makes at a site, each a function of an openstacksdk
``Connection`` for ``SiteDriver.call``: a server's attached volumes, the plan's volume
group (default group type; one per plan, found again by name), the group snapshot that is a
checkpoint's consistency point and its member snapshots, and their removal."""

from __future__ import annotations

from typing import Any, cast

from openstack import exceptions as sdk_exceptions
from openstack.block_storage.v3._proxy import Proxy as Cinder
from openstack.connection import Connection

from cascade.sites.waits import until_status

GROUP_TYPE = "default_group_type"
GROUP_MICROVERSION = "3.14"


def cinder(c: Connection) -> Cinder:
    """The site's block storage, which is v3 (groups need microversion 3.13 on)."""
    return cast(Cinder, c.block_storage)


def volumes_of(c: Connection, at_site: str, given: list[str]) -> list[str]:
    """``given`` once each is found at the site (a 404 otherwise); if none is given, the
    volumes attached to the server ``at_site``."""
    for volume_id in given:
        cinder(c).get_volume(volume_id)
    if given:
        return given
    return [str(a.volume_id) for a in c.compute.volume_attachments(at_site)]


def group_name(plan_id: str) -> str:
    return f"cascade-plan-{plan_id}"


def _find_group(c: Connection, plan_id: str, known_id: str | None) -> Any:
    if known_id is not None:
        try:
            return cinder(c).get_group(known_id)
        except sdk_exceptions.NotFoundException:
            pass
    return next((g for g in cinder(c).groups() if g.name == group_name(plan_id)), None)


def _members(c: Connection, group_id: str) -> list[str]:
    return [str(v.id) for v in cinder(c).volumes(details=True) if v.group_id == group_id]


def _change_members(c: Connection, group_id: str, change: str, volume_ids: list[str]) -> None:
    """Add or remove (``change``: add_volumes, remove_volumes) volumes of a group."""
    if volume_ids:
        response = cinder(c).put(
            f"/groups/{group_id}",
            json={"group": {change: ",".join(volume_ids)}},
            microversion=GROUP_MICROVERSION,
        )
        sdk_exceptions.raise_from_response(response)


def ensure_group(c: Connection, plan_id: str, known_id: str | None, volume_ids: list[str]) -> str:
    """The plan's group at the site holding ``volume_ids`` (made or completed as needed)."""
    types = sorted({str(cinder(c).get_volume(v).volume_type) for v in volume_ids})
    group = _find_group(c, plan_id, known_id)
    if group is None:
        group = cinder(c).create_group(
            name=group_name(plan_id), group_type=GROUP_TYPE, volume_types=types
        )
    members = set(_members(c, str(group.id)))
    _change_members(c, str(group.id), "add_volumes", [v for v in volume_ids if v not in members])
    return str(group.id)


def snapshot_group(c: Connection, group_id: str, name: str) -> tuple[str, str]:
    """Take the group snapshot (every member at one instant); (its id, its created_at)."""
    taken = cinder(c).create_group_snapshot(group_id=group_id, name=name)
    shown = cinder(c).get_group_snapshot(taken.id)
    return str(shown.id), str(shown.created_at)


def member_snapshots(c: Connection, group_snapshot_id: str) -> dict[str, str]:
    """Wait for the group snapshot to be available; volume id -> its member snapshot id."""
    until_status(lambda: cinder(c).get_group_snapshot(group_snapshot_id), "available", timeout=60)
    return {
        str(s.volume_id): str(s.id)
        for s in cinder(c).snapshots(details=True)
        if s.group_snapshot_id == group_snapshot_id
    }


def devices(c: Connection, volume_ids: list[str]) -> dict[str, str]:
    """Each volume's device at the server it is attached to ("" if it is not attached)."""
    found = {}
    for volume_id in volume_ids:
        attachments = cinder(c).get_volume(volume_id).attachments or []
        found[volume_id] = str(attachments[0].get("device") or "") if attachments else ""
    return found


def delete_group_snapshots(c: Connection, group_snapshot_ids: list[str]) -> None:
    for group_snapshot_id in group_snapshot_ids:
        cinder(c).delete_group_snapshot(group_snapshot_id, ignore_missing=True)


def remove_group(c: Connection, plan_id: str, known_id: str | None, snapshots: list[str]) -> None:
    """Delete the checkpoints' group snapshots and the plan's group (never its volumes)."""
    delete_group_snapshots(c, snapshots)
    group = _find_group(c, plan_id, known_id)
    if group is None:
        return
    _change_members(c, str(group.id), "remove_volumes", _members(c, str(group.id)))
    cinder(c).delete_group(group.id)
