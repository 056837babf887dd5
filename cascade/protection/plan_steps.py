"""Protection plans, worker side: ``plan.create`` finds each member's volumes at the source
site (those attached to it, or checks the ones the plan names), ``plan.delete`` removes the
plan's checkpoints' group snapshots and its group there (never a volume)."""

from __future__ import annotations

from functools import partial
from typing import Any

from sqlalchemy import select

from cascade.db.models import Server
from cascade.db.protection_models import Checkpoint, PlanMember, ProtectionPlan
from cascade.engine.context import context
from cascade.engine.workflows import Job, StepFailed, StepRun, handler, step, step_function
from cascade.errors import Conflict
from cascade.protection.site_groups import remove_group, volumes_of


def site_server_id(server: Server) -> str:
    if server.site_server_id is None:
        raise Conflict(f"server {server.id} is not at its site (yet): it is {server.status}")
    return server.site_server_id


@step_function("plan.volumes")
def find_volumes(_run: StepRun, plan_id: str) -> dict[str, list[str]]:
    """Each member's volumes (server id -> volume ids), written to its member row."""
    engine = context()
    plan = engine.row(ProtectionPlan, plan_id, f"protection plan {plan_id}")
    with engine.db.session() as session:
        rows = session.execute(
            select(PlanMember, Server)
            .join(Server, Server.id == PlanMember.server_id)
            .where(PlanMember.plan_id == plan_id)
            .order_by(PlanMember.position)
        ).all()
    driver = engine.driver(plan.source_site_id)
    found: dict[str, list[str]] = {}
    for member, server in rows:
        found[server.id] = driver.call(
            f"find the volumes of server {server.id}",
            partial(volumes_of, at_site=site_server_id(server), given=list(member.volume_ids)),
        )
    with engine.db.session() as session:
        for member, server in rows:
            session.get_one(PlanMember, (plan_id, member.position)).volume_ids = found[server.id]
    return found


@handler("plan.create")
def create(job: Job) -> dict[str, Any]:
    volumes = step(job, "find the members' volumes", None, "plan.volumes", job.resource_id)
    if not any(volumes.values()):
        raise StepFailed("none of the plan's servers has a volume at its site: nothing to protect")
    return {"volumes": volumes}


@step_function("plan.remove")
def remove(_run: StepRun, plan_id: str) -> None:
    engine = context()
    plan = engine.row(ProtectionPlan, plan_id, f"protection plan {plan_id}")
    with engine.db.session() as session:
        snapshots = [
            s
            for s in session.scalars(
                select(Checkpoint.site_group_snapshot_id).where(Checkpoint.plan_id == plan_id)
            )
            if s is not None
        ]
    engine.driver(plan.source_site_id).call(
        f"remove the group of plan {plan_id}",
        lambda c: remove_group(c, plan_id, plan.site_group_id, snapshots),
    )


@handler("plan.delete")
def delete(job: Job) -> None:
    step(job, "remove the plan's group and snapshots", None, "plan.remove", job.resource_id)
