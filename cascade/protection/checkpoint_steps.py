"""Strategy 1's barrier, worker side: ``plan.checkpoint`` freezes the plan's servers in their
order, takes one group snapshot of all their volumes (the consistency point), and thaws
them in reverse order, always.

Thawing is driven by the checkpoint row, never by the workflow's memory: each freeze step
first appends its position to ``checkpoints.frozen`` (and names this worker process in
``frozen_by``), then quiesces; the thaw step unquiesces the recorded positions, last first,
removing each once the site has thawed it (a server that was never frozen, because its
quiesce failed or never reached the site, answers "already unquiesced", which counts as
thawed). So a failed step, a failed quiesce and a worker SIGKILLed mid-freeze all end in the
same thaw: the worker that resumes the workflow (DBOS recovery) replays the recorded steps,
and the first step it runs itself, a freeze or the snapshot, sees that another process froze
the servers and fails, which sends it to the thaw before anything else touches the site.
The plan's ``freeze_bound_s`` is checked before each quiesce and before the snapshot: once
the first freeze is older than the bound the barrier is given up, thawed and failed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from openstack.connection import Connection
from sqlalchemy import delete, select

from cascade.db.models import Server, Site
from cascade.db.protection_models import Checkpoint, CheckpointVolume, PlanMember, ProtectionPlan
from cascade.engine.context import context
from cascade.engine.workflows import Job, StepFailed, StepRun, handler, step, step_function
from cascade.errors import Conflict, present
from cascade.protection.backup_steps import back_up
from cascade.protection.backups import sweep
from cascade.protection.chunk_store import open_store
from cascade.protection.plan_steps import site_server_id
from cascade.protection.site_groups import (
    delete_group_snapshots,
    devices,
    ensure_group,
    member_snapshots,
    snapshot_group,
)
from cascade.sites.driver import SiteCallFailed

PROCESS = uuid.uuid4().hex  # this worker process, as the checkpoints it froze name it


def _now() -> datetime:
    return datetime.now(UTC)


def _plan_of(checkpoint_id: str) -> tuple[Checkpoint, ProtectionPlan]:
    engine = context()
    checkpoint = engine.row(Checkpoint, checkpoint_id, f"checkpoint {checkpoint_id}")
    plan = engine.row(ProtectionPlan, checkpoint.plan_id, f"protection plan {checkpoint.plan_id}")
    return checkpoint, plan


@step_function("checkpoint.begin")
def begin(_run: StepRun, operation_id: str) -> dict[str, Any]:
    """Mark the operation's checkpoint running; its id, the source site's name and the
    members in order: (position, server id, the server's id at the site, its volumes)."""
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
        if not any(volumes for *_rest, volumes in members):
            raise Conflict(f"plan {plan.id} has no volumes (its create failed?): nothing to freeze")
        site = session.get_one(Site, plan.source_site_id).name
        return {"checkpoint": checkpoint.id, "site": site, "members": members}


@step_function("checkpoint.group")
def gather(_run: StepRun, checkpoint_id: str, volume_ids: list[str]) -> str:
    """The plan's volume group at the source site, holding every member volume."""
    _checkpoint, plan = _plan_of(checkpoint_id)
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


def _hold_barrier(checkpoint: Checkpoint, plan: ProtectionPlan) -> None:
    """Raise unless this process froze what is frozen and the freeze is within its bound."""
    if checkpoint.frozen_by not in (None, PROCESS):
        raise Conflict(
            f"the worker that froze servers {checkpoint.frozen} was lost mid-freeze; "
            "the barrier is given up and they are thawed"
        )
    started = checkpoint.first_freeze_at
    if started is not None and _now() - started > timedelta(seconds=plan.freeze_bound_s):
        raise Conflict(
            f"the barrier was not reached within the plan's freeze bound "
            f"({plan.freeze_bound_s:g} s): thawing"
        )


@step_function("checkpoint.freeze")
def freeze(_run: StepRun, checkpoint_id: str, position: int, server_id: str, at_site: str) -> None:
    """Record the position as frozen, then quiesce its server (``at_site``: its id there)."""
    with context().db.session() as session:
        checkpoint = session.get_one(Checkpoint, checkpoint_id)
        plan = session.get_one(ProtectionPlan, checkpoint.plan_id)
        _hold_barrier(checkpoint, plan)
        if position not in checkpoint.frozen:
            checkpoint.frozen = [*checkpoint.frozen, position]
        checkpoint.frozen_by = PROCESS
        checkpoint.first_freeze_at = checkpoint.first_freeze_at or _now()
        site_id = plan.source_site_id
    try:
        context().driver(site_id).quiesce(at_site)
    except SiteCallFailed as failure:  # named as the plan knows it
        call = f"quiesce server {server_id} (position {position})"
        raise SiteCallFailed(failure.site, call, failure.reason, failure.http_status) from failure


@step_function("checkpoint.snapshot")
def take_snapshot(_run: StepRun, checkpoint_id: str, group_id: str) -> str:
    """The group snapshot, taken while every member is frozen: the consistency point."""
    checkpoint, plan = _plan_of(checkpoint_id)
    _hold_barrier(checkpoint, plan)
    snapshot_id, taken_at = (
        context()
        .driver(plan.source_site_id)
        .call(
            f"snapshot the group of plan {plan.id}",
            lambda c: snapshot_group(c, group_id, f"cascade-checkpoint-{checkpoint_id}"),
        )
    )
    with context().db.session() as session:
        row = session.get_one(Checkpoint, checkpoint_id)
        row.site_group_snapshot_id = snapshot_id
        row.consistency_point = datetime.fromisoformat(taken_at).replace(tzinfo=UTC)
    return snapshot_id


def _never_frozen(failure: SiteCallFailed) -> bool:
    return failure.http_status == 409 and "already running unquiesced" in failure.reason


@step_function("checkpoint.thaw")
def thaw(_run: StepRun, checkpoint_id: str, members: list[list[Any]]) -> list[int]:
    """Unquiesce every position the checkpoint records as frozen, last first; the positions
    thawed. A server the site cannot thaw stays recorded and is named in the failure.
    ``members``: (position, the server's id at the site) pairs."""
    _checkpoint, plan = _plan_of(checkpoint_id)
    servers = {int(position): str(at_site) for position, at_site in members}
    driver = context().driver(plan.source_site_id)
    thawed: list[int] = []
    stuck: dict[int, str] = {}
    while True:
        checkpoint = context().row(Checkpoint, checkpoint_id, f"checkpoint {checkpoint_id}")
        left = [p for p in checkpoint.frozen if p not in stuck]
        if not left:
            break
        position = left[-1]
        try:
            driver.unquiesce(servers[position])
        except SiteCallFailed as failure:
            if not _never_frozen(failure):
                stuck[position] = failure.message
                continue
        thawed.append(position)
        with context().db.session() as session:
            row = session.get_one(Checkpoint, checkpoint_id)
            row.frozen = [p for p in row.frozen if p != position]
            row.last_thaw_at = _now()
    if stuck:
        raise SiteCallFailed(plan.source_site_id, "thaw", "; ".join(stuck.values()))
    return thawed


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
    _checkpoint, plan = _plan_of(checkpoint_id)
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
    snapshots leave the site, then their rows, then the chunks no checkpoint references
    from the plan's store; the checkpoints removed and the chunks deleted. Failed ones stay
    as the record of what went wrong (they hold nothing at the site nor in the store)."""
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
    removed = [c.id for c in expired]
    with engine.db.session() as session:
        session.execute(delete(Checkpoint).where(Checkpoint.id.in_(removed)))
    swept = sweep(engine.db, open_store(plan.chunk_store, engine.driver))
    return {"checkpoints": removed, "chunks": swept}


def _thaw_all(job: Job, checkpoint_id: str, site: str, servers: list[list[Any]]) -> str | None:
    try:
        step(job, "thaw, last frozen first", site, "checkpoint.thaw", checkpoint_id, servers)
    except StepFailed as failure:
        return str(failure)
    return None


@handler("plan.checkpoint")
def checkpoint(job: Job) -> dict[str, Any]:
    begun = step(job, "begin the checkpoint", None, "checkpoint.begin", job.operation_id)
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
            step(
                job,
                f"quiesce server {server_id}",
                site,
                "checkpoint.freeze",
                checkpoint_id,
                position,
                server_id,
                at_site,
            )
        snapshot_id = step(
            job, "take the group snapshot", site, "checkpoint.snapshot", checkpoint_id, group_id
        )
    except StepFailed as failure:
        error = str(failure)
    thaw_error = _thaw_all(job, checkpoint_id, site, servers)
    error = "; ".join(e for e in (error, thaw_error) if e) or None
    volumes = step(
        job, "record the checkpoint", site, "checkpoint.end", checkpoint_id, snapshot_id, error
    )
    error = error or back_up(job, checkpoint_id, site, volumes)
    if error:
        raise StepFailed(f"checkpoint {checkpoint_id} failed: {error}")
    expired = step(job, "apply the plan's retention", site, "checkpoint.retain", job.resource_id)
    return {"checkpoint": checkpoint_id, "volumes": volumes, "expired": expired}
