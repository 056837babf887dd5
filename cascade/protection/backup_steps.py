"""The steps of a checkpoint after its consistency point: each volume's backup into the
plan's chunk store (``backups.VolumeBackup``), then the checkpoint available (restorable at
the target from ``backed_up_at``) or failed, its group snapshot given back to the site.

May import cascade.protection (backups, chunk_store, site_groups), cascade.engine,
cascade.db, cascade.sites.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from cascade.db.protection_models import Checkpoint, CheckpointVolume, ProtectionPlan
from cascade.engine.context import context
from cascade.engine.workflows import Job, StepFailed, StepRun, step, step_function
from cascade.protection.backups import VolumeBackup, parent_of
from cascade.protection.chunk_store import open_store
from cascade.protection.site_groups import delete_group_snapshots
from cascade.sites.driver import SiteCallFailed


@step_function("checkpoint.backup")
def back_up_volume(_run: StepRun, checkpoint_id: str, volume_id: str) -> dict[str, int]:
    """Back the volume's snapshot up, incrementally from its previous checkpoint's."""
    engine = context()
    with engine.db.session() as session:
        checkpoint = session.get_one(Checkpoint, checkpoint_id)
        plan = session.get_one(ProtectionPlan, checkpoint.plan_id)
        row = session.get_one(CheckpointVolume, (checkpoint_id, volume_id))
        parent = parent_of(session, checkpoint, volume_id)
        since = (parent.snapshot_id, dict(parent.blocks)) if parent is not None else None
        row.parent_checkpoint_id = parent.checkpoint_id if parent is not None else None
        backup = VolumeBackup(
            db=engine.db,
            driver=engine.driver(plan.source_site_id),
            store=open_store(checkpoint.store_url, engine.driver),
            checkpoint_id=checkpoint_id,
            volume_id=volume_id,
            snapshot_id=row.snapshot_id,
            parent=since,
        )
    return backup.run()


@step_function("checkpoint.backed_up")
def finish(_run: StepRun, checkpoint_id: str, error: str | None) -> str | None:
    """The checkpoint available, or failed with ``error`` and its group snapshot deleted at
    the source (if the site answers: a lost site keeps it, which the result says)."""
    engine = context()
    with engine.db.session() as session:
        checkpoint = session.get_one(Checkpoint, checkpoint_id)
        checkpoint.status = "failed" if error else "available"
        checkpoint.error = error
        if error is None:
            checkpoint.backed_up_at = datetime.now(UTC)
            return None
        for volume in session.scalars(
            select(CheckpointVolume).where(CheckpointVolume.checkpoint_id == checkpoint_id)
        ):
            volume.status = "failed"
            volume.blocks = {}  # a failed checkpoint references no chunk
        plan = session.get_one(ProtectionPlan, checkpoint.plan_id)
        snapshot = checkpoint.site_group_snapshot_id
    if snapshot is None:
        return None
    try:
        engine.driver(plan.source_site_id).call(
            f"delete group snapshot {snapshot} of failed checkpoint {checkpoint_id}",
            lambda c: delete_group_snapshots(c, [snapshot]),
        )
    except SiteCallFailed as failure:
        return f"its group snapshot stays at the source site: {failure.message}"
    return None


def back_up(job: Job, checkpoint_id: str, site: str, volume_ids: list[str]) -> str | None:
    """Back every volume up, in the plan's order, then mark the checkpoint: the failure, if
    any (the checkpoint is then failed)."""
    error = None
    for volume_id in volume_ids:
        try:
            step(
                job,
                f"back up volume {volume_id}",
                site,
                "checkpoint.backup",
                checkpoint_id,
                volume_id,
            )
        except StepFailed as failure:
            error = f"the backup of volume {volume_id} failed: {failure}"
            break
    step(job, "mark the checkpoint", site, "checkpoint.backed_up", checkpoint_id, error)
    return error
