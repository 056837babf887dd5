"""Strategy 2, storage replication: the source site's storage ships each volume's consistency
point to its replication target; Cascade records where, and on restore adopts the replicas at
the target by reference.

- ``plan.replicated`` (``plan.create``): every member volume is replicated at the source site
  (``replication_status: enabled``, a volume type with ``replication_enabled='<is> True'``),
  else the plan fails naming the volumes that are not.
- ``checkpoint.replicas`` (``plan.checkpoint``, after strategy 1's barrier and group snapshot,
  which is the consistency point the storage ships): each volume's replica reference, from
  its ``replication_driver_data`` (``{"replica": NAME, "snapshot": ID}``), once the replica
  holds the volume's snapshot of the checkpoint; the checkpoint is then available, with no
  backup made.
- ``restore.replica`` (``restore.run``): the replica managed by reference at the target (into
  the target's backend pool), found again by name if an earlier attempt managed it, then
  booted from as strategy 1's restored volumes are.

A replica is one consistency point per volume (the newest shipped), so only a plan's newest
checkpoint restores this way (``restores`` refuses older ones).

May import cascade.protection (restore_steps, backup_steps' step names), cascade.engine,
cascade.db, cascade.sites.
"""

from __future__ import annotations

import json
from typing import Any

from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection
from sqlalchemy import select

from cascade.db.protection_models import (
    Checkpoint,
    CheckpointVolume,
    PlanMember,
    ProtectionPlan,
    Restore,
)
from cascade.engine.context import context
from cascade.engine.workflows import Job, StepFailed, StepRun, step, step_function
from cascade.errors import Conflict
from cascade.protection.restore_steps import GIB, named_volume, record_volume
from cascade.protection.site_groups import cinder

BOOT_DEVICE = "/dev/vda"
MANAGE_MICROVERSION = "3.8"  # /manageable_volumes (openstacksdk asks for its newest, 3.71)


def _driver_data(volume: Any) -> dict[str, Any]:
    """The volume's replication driver data (a driver's JSON text), as a dict."""
    try:
        data = json.loads(volume.replication_driver_data or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def unreplicated(c: Connection, volume_ids: list[str]) -> list[str]:
    """Those of ``volume_ids`` the site does not replicate."""
    return [v for v in volume_ids if c.block_storage.get_volume(v).replication_status != "enabled"]


def replicas(c: Connection, volume_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per volume: its replication status, size (GiB) and driver data (replica, snapshot)."""
    found = {}
    for volume_id in volume_ids:
        volume = c.block_storage.get_volume(volume_id)
        found[volume_id] = {
            **_driver_data(volume),
            "status": volume.replication_status,
            "size": volume.size,
        }
    return found


@step_function("plan.replicated")
def check_replicated(_run: StepRun, plan_id: str) -> None:
    """Fail naming the plan's volumes the source site does not replicate."""
    engine = context()
    plan = engine.row(ProtectionPlan, plan_id, f"protection plan {plan_id}")
    with engine.db.session() as session:
        members = session.scalars(select(PlanMember).where(PlanMember.plan_id == plan_id))
        volume_ids = [v for member in members for v in member.volume_ids]
    missing = engine.driver(plan.source_site_id).call(
        f"check the volumes of plan {plan_id} are replicated",
        lambda c: unreplicated(c, volume_ids),
    )
    if missing:
        raise Conflict(
            f"volume {', '.join(missing)} is not replicated at the source site: a "
            "storage_replication plan needs every volume of a volume type with "
            "replication_enabled='<is> True'"
        )


@step_function("checkpoint.replicas")
def record(_run: StepRun, checkpoint_id: str) -> dict[str, str]:
    """Each volume's replica, once it holds the volume's snapshot of the checkpoint; volume
    id -> replica reference."""
    engine = context()
    checkpoint = engine.row(Checkpoint, checkpoint_id, f"checkpoint {checkpoint_id}")
    plan = engine.row(ProtectionPlan, checkpoint.plan_id, f"protection plan {checkpoint.plan_id}")
    with engine.db.session() as session:
        snapshots = {
            v.volume_id: v.snapshot_id
            for v in session.scalars(
                select(CheckpointVolume).where(CheckpointVolume.checkpoint_id == checkpoint_id)
            )
        }
    shipped = engine.driver(plan.source_site_id).call(
        f"read the replicas of checkpoint {checkpoint_id}",
        lambda c: replicas(c, list(snapshots)),
    )
    behind = [
        f"volume {v} (replication {shipped[v]['status']}, its replica holds snapshot "
        f"{shipped[v].get('snapshot')})"
        for v, snapshot in snapshots.items()
        if shipped[v].get("snapshot") != snapshot or not shipped[v].get("replica")
    ]
    if behind:
        raise Conflict(f"the replicas do not hold the checkpoint's snapshots: {'; '.join(behind)}")
    with engine.db.session() as session:
        for volume_id in snapshots:
            row = session.get_one(CheckpointVolume, (checkpoint_id, volume_id))
            row.replica = str(shipped[volume_id]["replica"])
            row.size_bytes = int(shipped[volume_id]["size"]) * GIB
            row.status = "available"
    return {v: str(shipped[v]["replica"]) for v in snapshots}


def record_replicas(job: Job, checkpoint_id: str, site: str) -> str | None:
    """Record the replicas, then mark the checkpoint (as a backup would): the failure, if
    any (the checkpoint is then failed)."""
    error = None
    try:
        step(job, "record the volumes' replicas", site, "checkpoint.replicas", checkpoint_id)
    except StepFailed as failure:
        error = str(failure)
    step(job, "mark the checkpoint", site, "checkpoint.backed_up", checkpoint_id, error)
    return error


def _manage(c: Connection, name: str, reference: str, bootable: bool) -> str:
    """The replica adopted at the site as volume ``name`` (found again by name), available."""

    def manage() -> Any:
        pool = next(iter(c.block_storage.backend_pools()), None)
        if pool is None:
            raise Conflict("the target site lists no backend pool to manage the replica into")
        body = {"host": pool.name, "ref": {"source-name": reference}, "name": name}
        response = cinder(c).post(
            "/manageable_volumes",
            json={"volume": {**body, "bootable": bootable}},
            microversion=MANAGE_MICROVERSION,
        )
        sdk_exceptions.raise_from_response(response)
        return cinder(c).get_volume(response.json()["volume"]["id"])

    return named_volume(c, name, manage)


@step_function("restore.replica")
def manage_replica(_run: StepRun, restore_id: str, volume_id: str) -> str:
    """Adopt the volume's replica at the target by reference; its id there."""
    engine = context()
    with engine.db.session() as session:
        restore = session.get_one(Restore, restore_id)
        volume = session.get_one(CheckpointVolume, (restore.checkpoint_id, volume_id))
    reference = volume.replica
    if reference is None:
        raise Conflict(f"volume {volume_id} of checkpoint {volume.checkpoint_id} has no replica")
    target = engine.driver(restore.target_site_id).call(
        f"manage the replica {reference} of volume {volume_id}",
        lambda c: _manage(
            c,
            f"cascade-restore-{restore_id}-{volume_id}",
            reference,
            volume.device == BOOT_DEVICE,
        ),
    )
    record_volume(restore_id, volume_id, volume=target, replica=reference)
    return target
