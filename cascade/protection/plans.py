"""Protection plans, API side: the plan's state machine and accepting its create, checkpoint
and delete. A plan protects servers of one project, all at one site (the source), for
another site (the target); its members are frozen in the order given. Every check that
needs only Cascade's rows is made here, before anything is queued; what needs the site (the
volumes attached to each server) is the ``plan.create`` operation's (``plan_steps``). The
checkpoints' view is here too: volumes, images and the members' recorded ports. Plans and
checkpoints are rendered a list at a time (``plans_out``, ``checkpoints_out``: what they
read beyond their own rows is one statement per kind for the whole list, never one per row);
a single row is a list of one. A plan's schedule (``checkpoint_every_s``) is set at create;
when its next checkpoint is due is ``schedule``'s, the pass taking it ``schedule_tick``'s."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.models import Operation, Server, Site
from cascade.db.protection_models import Checkpoint, CheckpointVolume, PlanMember, ProtectionPlan
from cascade.engine.operations import Operations
from cascade.engine.states import StateMachine, declare, transition
from cascade.errors import BadRequest, Conflict, present
from cascade.identity.policy import seen, seen_by
from cascade.network.networks import visible_site, visible_sites
from cascade.protection.chunk_store import store_location
from cascade.protection.schedule import next_checkpoints
from cascade.protection.schemas import (
    CheckpointOut,
    CheckpointPortOut,
    CheckpointVolumeOut,
    MemberIn,
    MemberOut,
    PlanIn,
    PlanOut,
)
from cascade.sites.named import site_names

DEFAULT_CONTAINER = "cascade-backups"
R = TypeVar("R")
T = TypeVar("T")

PLANS = declare(
    StateMachine(
        "plan",
        ProtectionPlan,
        {
            "create": transition((), "BUILD", "ACTIVE"),
            "checkpoint": transition(("ACTIVE", "ERROR"), "CHECKPOINTING", "ACTIVE"),
            "delete": transition(("ACTIVE", "ERROR"), "DELETING", None),
        },
    )
)


def _grouped(
    session: Session, query: Select[R], owner: Callable[[R], str], out: Callable[[R], T]
) -> dict[str, list[T]]:
    """The rows ``query`` reads (one statement), each rendered by ``out``, grouped by the id
    ``owner`` gives, in the query's order."""
    grouped: dict[str, list[T]] = defaultdict(list)
    for row in session.scalars(query):
        grouped[owner(row)].append(out(row))
    return grouped


def _member_out(member: PlanMember) -> MemberOut:
    return MemberOut(position=member.position, server=member.server_id, volumes=member.volume_ids)


def recovery_point_ages(session: Session, plan_ids: list[str]) -> dict[str, float]:
    """The RPO now, per plan: seconds since the consistency point of the plan's newest
    restorable checkpoint (a plan before its first is absent), read in one statement."""
    newest = session.execute(
        select(Checkpoint.plan_id, func.max(Checkpoint.consistency_point))
        .where(Checkpoint.plan_id.in_(plan_ids), Checkpoint.status == "available")
        .group_by(Checkpoint.plan_id)
    )
    now = datetime.now(UTC)
    return {
        plan_id: round((now - point).total_seconds(), 3)
        for plan_id, point in newest
        if point is not None
    }


def plans_out(session: Session, plans: Sequence[ProtectionPlan]) -> list[PlanOut]:
    """The plans' views in a fixed number of statements, however many plans there are."""
    ids = [plan.id for plan in plans]
    names = site_names(session)
    members = _grouped(
        session,
        select(PlanMember).where(PlanMember.plan_id.in_(ids)).order_by(PlanMember.position),
        lambda m: m.plan_id,
        _member_out,
    )
    ages = recovery_point_ages(session, ids)
    scheduled = next_checkpoints(session, plans)
    return [
        PlanOut(
            id=plan.id,
            name=plan.name,
            project_id=plan.project_id,
            source_site=names[plan.source_site_id],
            target_site=names[plan.target_site_id],
            strategy=plan.strategy,
            freeze_bound_s=plan.freeze_bound_s,
            retention=plan.retention,
            checkpoint_every_s=plan.checkpoint_every_s,
            next_checkpoint_at=scheduled[plan.id],
            members=members[plan.id],
            chunk_store=plan.chunk_store,
            rpo_s=ages.get(plan.id),
            status=plan.status,
            task=plan.task_operation_id,
            error=plan.error,
            created_at=plan.created_at,
        )
        for plan in plans
    ]


def _volume_out(volume: CheckpointVolume) -> CheckpointVolumeOut:
    return CheckpointVolumeOut(
        volume=volume.volume_id,
        server=volume.server_id,
        position=volume.position,
        device=volume.device,
        snapshot=volume.snapshot_id,
        status=volume.status,
        size_bytes=volume.size_bytes,
        block_size=volume.block_size,
        incremental_from=volume.parent_checkpoint_id,
        changed_blocks=volume.changed_blocks,
        done_blocks=volume.done_blocks,
        read_bytes=volume.read_bytes,
        stored_bytes=volume.stored_bytes,
        chunks=len(volume.blocks),
        replica=volume.replica,
    )


def checkpoints_out(session: Session, checkpoints: Sequence[Checkpoint]) -> list[CheckpointOut]:
    """The checkpoints' views in one statement more than the checkpoints' own: their
    volumes, each checkpoint's in the plan's order (member position, then device)."""
    volumes = _grouped(
        session,
        select(CheckpointVolume)
        .where(CheckpointVolume.checkpoint_id.in_([c.id for c in checkpoints]))
        .order_by(CheckpointVolume.position, CheckpointVolume.device),
        lambda v: v.checkpoint_id,
        _volume_out,
    )
    return [_checkpoint_out(c, volumes[c.id]) for c in checkpoints]


def _checkpoint_out(checkpoint: Checkpoint, volumes: list[CheckpointVolumeOut]) -> CheckpointOut:
    window = None
    if checkpoint.first_freeze_at and checkpoint.last_thaw_at:
        window = round((checkpoint.last_thaw_at - checkpoint.first_freeze_at).total_seconds(), 3)
    return CheckpointOut(
        id=checkpoint.id,
        plan_id=checkpoint.plan_id,
        status=checkpoint.status,
        consistency_point=checkpoint.consistency_point,
        backed_up_at=checkpoint.backed_up_at,
        store=checkpoint.store_url,
        volumes=volumes,
        images=checkpoint.images,
        ports={
            server: CheckpointPortOut.model_validate(port)
            for server, port in checkpoint.ports.items()
        },
        frozen_from=checkpoint.first_freeze_at,
        thawed_at=checkpoint.last_thaw_at,
        freeze_window_s=window,
        error=checkpoint.error,
        operation=checkpoint.operation_id,
        created_at=checkpoint.created_at,
    )


def find(session: Session, plan_id: str, projects: set[str] | None) -> ProtectionPlan:
    return seen(session, ProtectionPlan, plan_id, projects, "protection plan")


def _servers(session: Session, members: list[MemberIn], project_id: str) -> list[Server]:
    """The members' servers: each of ``project_id``, each once, all at one site."""
    servers: list[Server] = []
    for member in members:
        server = session.get(Server, member.server)
        if server is None or server.project_id != project_id:
            raise BadRequest(f"server {member.server} is not a server of project {project_id}")
        if any(s.id == server.id for s in servers):
            raise BadRequest(f"server {server.id} is named twice")
        if servers and server.site_id != servers[0].site_id:
            raise BadRequest(
                f"server {server.id} is not at the site of server {servers[0].id}: "
                "a plan's servers are all at one site"
            )
        servers.append(server)
    return servers


def _check_strategy(spec: PlanIn, servers: list[Server]) -> None:
    """An image_snapshot plan protects one server booting from its image (one VM, through
    the image service), naming no volumes."""
    if spec.strategy != "image_snapshot":
        return
    if len(servers) != 1:
        raise BadRequest(
            f"an image_snapshot plan protects exactly one server (one VM, through the image "
            f"service), not {len(servers)}: use group_snapshot for several"
        )
    if spec.members[0].volumes or any(
        d.get("boot_index") == 0 for d in servers[0].block_devices or []
    ):
        raise BadRequest(
            f"server {servers[0].id}: an image_snapshot plan images a server booting from its "
            "image, without volumes: use group_snapshot or storage_replication for volumes"
        )


def _target(session: Session, name: str, source_id: str, projects: set[str] | None) -> Site:
    site = visible_site(session, name, projects)
    if site.id == source_id:
        raise BadRequest(f"the target site {site.name} is the servers' own site: choose another")
    return site


def _chunk_store(session: Session, spec: PlanIn, target: Site, projects: set[str] | None) -> str:
    """The plan's chunk store URL: the one asked for (its form checked, its site one the
    caller sees), or the target site's object store."""
    if spec.chunk_store is None:
        return f"site://{target.name}/{DEFAULT_CONTAINER}"
    kind, where = store_location(spec.chunk_store)
    if kind == "site" and not any(s.name == where for s in visible_sites(session, projects)):
        raise BadRequest(f"the chunk store's site {where!r} is not a registered site")
    return spec.chunk_store


class PlanService:
    def __init__(self, db: Database, operations: Operations) -> None:
        self._db = db
        self._operations = operations

    def show(self, plan_id: str, projects: set[str] | None) -> PlanOut:
        with self._db.session() as session:
            return plans_out(session, [find(session, plan_id, projects)])[0]

    def plans(self, projects: set[str] | None) -> list[PlanOut]:
        with self._db.session() as session:
            query = select(ProtectionPlan).order_by(ProtectionPlan.created_at, ProtectionPlan.id)
            query = seen_by(query, ProtectionPlan.project_id, projects)
            return plans_out(session, session.scalars(query).all())

    def create(
        self, spec: PlanIn, project_id: str, projects: set[str] | None, key: str | None
    ) -> Operation:
        """Accept a create; the operation finds the volumes of members that name none. Returns
        the operation (its ``resource_id`` is the plan's)."""

        def write(session: Session, operation_id: str) -> tuple[str, str]:
            servers = _servers(session, spec.members, project_id)
            _check_strategy(spec, servers)
            target = _target(session, spec.target_site, servers[0].site_id, projects)
            taken = select(ProtectionPlan.id).where(
                ProtectionPlan.project_id == project_id, ProtectionPlan.name == spec.name
            )
            if session.scalar(taken) is not None:
                raise Conflict(f"a protection plan named {spec.name} already exists")
            plan = ProtectionPlan(
                project_id=project_id,
                name=spec.name,
                source_site_id=servers[0].site_id,
                target_site_id=target.id,
                strategy=spec.strategy,
                freeze_bound_s=spec.freeze_bound_s,
                retention=spec.retention,
                checkpoint_every_s=spec.checkpoint_every_s,
                chunk_store=_chunk_store(session, spec, target, projects),
                status="BUILD",
                task_operation_id=operation_id,
            )
            session.add(plan)
            session.flush()
            for position, (member, server) in enumerate(zip(spec.members, servers, strict=True)):
                session.add(
                    PlanMember(
                        plan_id=plan.id,
                        position=position + 1,
                        server_id=server.id,
                        volume_ids=list(member.volumes or []),
                    )
                )
            return "plan", plan.id

        return self._operations.accept(
            kind="plan.create",
            project_id=project_id,
            request=spec.model_dump(),
            write=write,
            idempotency_key=key,
        )

    def _act(self, plan_id: str, action: str, project_id: str, key: str | None) -> Operation:
        """Accept ``plan.{action}``; a checkpoint also gets its pending row."""

        def write(session: Session, operation_id: str) -> tuple[str, str]:
            PLANS.begin(session, plan_id, action, operation_id)
            if action == "checkpoint":
                session.add(
                    Checkpoint(
                        plan_id=plan_id,
                        project_id=project_id,
                        status="pending",
                        operation_id=operation_id,
                        store_url=session.get_one(ProtectionPlan, plan_id).chunk_store,
                        frozen=[],
                    )
                )
            return "plan", plan_id

        return self._operations.accept(
            kind=f"plan.{action}",
            project_id=project_id,
            request={"plan": plan_id},
            write=write,
            idempotency_key=key,
        )

    def delete(self, plan_id: str, project_id: str, key: str | None) -> Operation:
        """Accept a delete: its checkpoints' snapshots and its group go from the site."""
        return self._act(plan_id, "delete", project_id, key)

    def checkpoint(self, plan_id: str, project_id: str, key: str | None) -> tuple[str, Operation]:
        """Accept a checkpoint (one at a time per plan); (the checkpoint id, the operation)."""
        operation = self._act(plan_id, "checkpoint", project_id, key)
        with self._db.session() as session:
            found = session.scalar(
                select(Checkpoint.id).where(Checkpoint.operation_id == operation.id)
            )
        return present(found, f"the checkpoint of operation {operation.id}"), operation

    def show_checkpoint(self, checkpoint_id: str, projects: set[str] | None) -> CheckpointOut:
        with self._db.session() as session:
            checkpoint = seen(session, Checkpoint, checkpoint_id, projects, "checkpoint")
            return checkpoints_out(session, [checkpoint])[0]

    def checkpoints(self, projects: set[str] | None) -> list[CheckpointOut]:
        with self._db.session() as session:
            query = select(Checkpoint).order_by(Checkpoint.created_at, Checkpoint.id)
            query = seen_by(query, Checkpoint.project_id, projects)
            return checkpoints_out(session, session.scalars(query).all())
