"""A checkpoint, worker side: ``plan.checkpoint`` gathers the plan's volumes into its group
at the source site, freezes the plan's servers in their order, takes one group snapshot of
all their volumes (the consistency point), and thaws them in reverse order, always (the
barrier: ``barrier``). Then, by the plan's strategy: group_snapshot backs the snapshots up
(``backup_steps``); storage_replication records the replicas the site's storage shipped from
that group snapshot (``replica_steps``). An image_snapshot plan's checkpoint is
``image_steps``' (its one server behind the same barrier). After a success, the plan's
retention.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from openstack.connection import Connection
from sqlalchemy import delete, select

from cascade.db.models import Server, Site
from cascade.db.protection_models import Checkpoint, CheckpointVolume, PlanMember, ProtectionPlan
from cascade.engine.context import context
from cascade.engine.workflows import Job, StepFailed, StepRun, handler, step, step_function
from cascade.errors import Conflict, present
from cascade.protection.backup_steps import back_up
from cascade.protection.barrier import (
    freeze_member,
    hold_barrier,
    plan_of,
    still_held,
    thaw_all,
)
from cascade.protection.chunk_claims import sweep
from cascade.protection.chunk_store import open_store
from cascade.protection.image_steps import drop_images, image_checkpoint
from cascade.protection.plan_steps import site_server_id
from cascade.protection.replica_steps import record_replicas
from cascade.protection.restore_ports import recorded_ports
from cascade.protection.site_groups import (
    delete_group_snapshots,
    devices,
    ensure_group,
    member_snapshots,
    snapshot_group,
)


@step_function("checkpoint.begin")
def begin(_run: StepRun, operation_id: str) -> dict[str, Any]:
    """Mark the operation's checkpoint running, recording the members' ports on Cascade
    networks; its id, the source site's name and the members in order: (position, server
    id, the server's id at the site, its volumes)."""
    with context().db.session() as session:
        checkpoint = present(
            session.scalar(select(Checkpoint).where(Checkpoint.operation_id == operation_id)),
            f"the checkpoint of operation {operation_id}",
        )
        checkpoint.status = "running"
        plan = session.get_one(ProtectionPlan, checkpoint.plan_id)
        rows = session.execute(
            select(PlanMember, Server)
            .join(Server, Server.id == PlanMember.server_id)
            .where(PlanMember.plan_id == plan.id)
            .order_by(PlanMember.position)
        ).all()
        members = [(m.position, s.id, site_server_id(s), m.volume_ids) for m, s in rows]
        checkpoint.ports = recorded_ports(session, [s.id for _m, s in rows])
        if plan.strategy != "image_snapshot" and not any(v for *_rest, v in members):
            raise Conflict(f"plan {plan.id} has no volumes (its create failed?): nothing to freeze")
        site = session.get_one(Site, plan.source_site_id).name
        return {
            "checkpoint": checkpoint.id,
            "site": site,
            "members": members,
            "strategy": plan.strategy,
        }


@step_function("checkpoint.group")
def gather(_run: StepRun, checkpoint_id: str, volume_ids: list[str]) -> str:
    """The plan's volume group at the source site, holding every member volume."""
    _checkpoint, plan = plan_of(checkpoint_id)
    group_id = (
        context()
        .driver(plan.source_site_id)
        .call(
            f"gather the volumes of plan {plan.id} into a group",
            lambda c: ensure_group(c, plan.id, plan.site_group_id, volume_ids),
        )
    )
    with context().db.session() as session:
        session.get_one(ProtectionPlan, plan.id).site_group_id = group_id
    return group_id


@step_function("checkpoint.snapshot")
def take_snapshot(_run: StepRun, checkpoint_id: str, group_id: str) -> str:
    """The group snapshot, taken while every member is frozen: the consistency point."""
    checkpoint, plan = plan_of(checkpoint_id)
    hold_barrier(checkpoint, plan)
    driver = context().driver(plan.source_site_id)
    snapshot_id, taken_at = driver.call(
        f"snapshot the group of plan {plan.id}",
        lambda c: snapshot_group(c, group_id, f"cascade-checkpoint-{checkpoint_id}"),
    )
    try:
        still_held(checkpoint_id)
    except Conflict:  # thawed by the watchdog before the snapshot was taken: not consistent
        driver.call(
            f"discard group snapshot {snapshot_id}",
            lambda c: delete_group_snapshots(c, [snapshot_id]),
        )
        raise
    with context().db.session() as session:
        row = session.get_one(Checkpoint, checkpoint_id)
        row.site_group_snapshot_id = snapshot_id
        row.consistency_point = datetime.fromisoformat(taken_at).replace(tzinfo=UTC)
    return snapshot_id


def _snapshots(
    site: str, snapshot_id: str, volume_ids: list[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """(volume id -> its member snapshot, volume id -> its device at its server)."""

    def read(c: Connection) -> tuple[dict[str, str], dict[str, str]]:
        return member_snapshots(c, snapshot_id), devices(c, volume_ids)

    return context().driver(site).call(f"read the snapshots of group snapshot {snapshot_id}", read)


@step_function("checkpoint.end")
def end(_run: StepRun, checkpoint_id: str, snapshot_id: str | None, error: str | None) -> Any:
    """Record the outcome: the checkpoint's volumes (each with its member snapshot, waited
    for, ready to back up) or the failure; the volume ids in the plan's order."""
    _checkpoint, plan = plan_of(checkpoint_id)
    with context().db.session() as session:
        members = list(
            session.scalars(
                select(PlanMember)
                .where(PlanMember.plan_id == plan.id)
                .order_by(PlanMember.position)
            )
        )
    order = [(m, v) for m in members for v in m.volume_ids]
    snapshots: dict[str, str] = {}
    attached: dict[str, str] = {}
    if error is None and snapshot_id is not None:
        snapshots, attached = _snapshots(plan.source_site_id, snapshot_id, [v for _m, v in order])
    with context().db.session() as session:
        row = session.get_one(Checkpoint, checkpoint_id)
        row.status = "failed" if error else "backing-up"
        row.error = error
        for member, volume_id in order if error is None else []:
            session.merge(
                CheckpointVolume(
                    checkpoint_id=checkpoint_id,
                    volume_id=volume_id,
                    server_id=member.server_id,
                    position=member.position,
                    device=attached.get(volume_id, ""),
                    snapshot_id=snapshots[volume_id],
                    status="pending",
                    blocks={},
                )
            )
    return [v for _m, v in order] if error is None else []


@step_function("checkpoint.retain")
def retain(_run: StepRun, plan_id: str) -> dict[str, Any]:
    """Keep the plan's newest ``retention`` available checkpoints: the older ones' group
    snapshots (or images, at both sites) leave the site, then their rows, then the chunks
    no checkpoint references from the plan's store; the checkpoints removed and the chunks
    deleted. Failed ones stay as the record of what went wrong (they hold nothing at the
    site nor in the store)."""
    engine = context()
    plan = engine.row(ProtectionPlan, plan_id, f"protection plan {plan_id}")
    with engine.db.session() as session:
        expired = list(
            session.scalars(
                select(Checkpoint)
                .where(Checkpoint.plan_id == plan_id, Checkpoint.status == "available")
                .order_by(Checkpoint.created_at.desc(), Checkpoint.id.desc())
                .offset(plan.retention)
            )
        )
    snapshots = [c.site_group_snapshot_id for c in expired if c.site_group_snapshot_id]
    engine.driver(plan.source_site_id).call(
        f"delete {len(snapshots)} expired group snapshots of plan {plan_id}",
        lambda c: delete_group_snapshots(c, snapshots),
    )
    drop_images(plan, expired)
    removed = [c.id for c in expired]
    with engine.db.session() as session:
        session.execute(delete(Checkpoint).where(Checkpoint.id.in_(removed)))
    swept = sweep(engine.db, open_store(plan.chunk_store, engine.driver))
    return {"checkpoints": removed, "chunks": swept}


@handler("plan.checkpoint")
def checkpoint(job: Job) -> dict[str, Any]:
    begun = step(job, "begin the checkpoint", None, "checkpoint.begin", job.operation_id)
    strategy = begun.get("strategy", "group_snapshot")
    if strategy == "image_snapshot":
        return image_checkpoint(job, begun)
    checkpoint_id, site = begun["checkpoint"], begun["site"]
    members = [tuple(m) for m in begun["members"]]
    servers = [[position, at_site] for position, _server, at_site, _volumes in members]
    volume_ids = [v for *_rest, volumes in members for v in volumes]
    snapshot_id: str | None = None
    error: str | None = None
    try:
        group_id = step(
            job,
            "gather the volumes into a group",
            site,
            "checkpoint.group",
            checkpoint_id,
            volume_ids,
        )
        for position, server_id, at_site, _volumes in members:
            freeze_member(job, checkpoint_id, site, position, server_id, at_site)
        snapshot_id = step(
            job, "take the group snapshot", site, "checkpoint.snapshot", checkpoint_id, group_id
        )
    except StepFailed as failure:
        error = str(failure)
    thaw_error = thaw_all(job, checkpoint_id, site, servers)
    error = "; ".join(e for e in (error, thaw_error) if e) or None
    volumes = step(
        job, "record the checkpoint", site, "checkpoint.end", checkpoint_id, snapshot_id, error
    )
    if strategy == "storage_replication":
        error = error or record_replicas(job, checkpoint_id, site)
    else:
        error = error or back_up(job, checkpoint_id, site, volumes)
    if error:
        raise StepFailed(f"checkpoint {checkpoint_id} failed: {error}")
    expired = step(job, "apply the plan's retention", site, "checkpoint.retain", job.resource_id)
    return {"checkpoint": checkpoint_id, "volumes": volumes, "expired": expired}
