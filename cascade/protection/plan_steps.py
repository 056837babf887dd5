"""Protection plans, worker side: ``plan.create`` finds each member's volumes at the source
site (those attached to it, or checks the ones the plan names; none for an image_snapshot
plan) and, for a storage_replication plan, checks every one is replicated there
(``replica_steps``); ``plan.delete`` removes the plan's checkpoints' group snapshots and its
group there (never a volume), and an image_snapshot plan's images at both sites."""

from __future__ import annotations

from functools import partial
from typing import Any

from sqlalchemy import select

from cascade.db.models import Server
from cascade.db.protection_models import Checkpoint, PlanMember, ProtectionPlan
from cascade.engine.context import context
from cascade.engine.workflows import Job, StepFailed, StepRun, handler, step, step_function
from cascade.errors import Conflict
from cascade.protection.image_steps import drop_images
from cascade.protection.site_groups import remove_group, volumes_of


def site_server_id(server: Server) -> str:
    if server.site_server_id is None:
        raise Conflict(f"server {server.id} is not at its site (yet): it is {server.status}")
    return server.site_server_id


@step_function("plan.volumes")
def find_volumes(_run: StepRun, plan_id: str) -> dict[str, Any]:
    """The plan's strategy and each member's volumes (server id -> volume ids), written to
    its member row: ``{"strategy", "volumes"}``."""
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
    for member, server in rows if plan.strategy != "image_snapshot" else []:
        found[server.id] = driver.call(
            f"find the volumes of server {server.id}",
            partial(volumes_of, at_site=site_server_id(server), given=list(member.volume_ids)),
        )
    with engine.db.session() as session:
        for member, server in rows:
            member_row = session.get_one(PlanMember, (plan_id, member.position))
            member_row.volume_ids = found.get(server.id, [])
    return {"strategy": plan.strategy, "volumes": found}


@handler("plan.create")
def create(job: Job) -> dict[str, Any]:
    found = step(job, "find the members' volumes", None, "plan.volumes", job.resource_id)
    strategy, volumes = found["strategy"], found["volumes"]
    if strategy == "image_snapshot":
        return {"volumes": volumes}
    if not any(volumes.values()):
        raise StepFailed("none of the plan's servers has a volume at its site: nothing to protect")
    if strategy == "storage_replication":
        step(job, "check the volumes are replicated", None, "plan.replicated", job.resource_id)
    return {"volumes": volumes}


@step_function("plan.remove")
def remove(_run: StepRun, plan_id: str) -> None:
    engine = context()
    plan = engine.row(ProtectionPlan, plan_id, f"protection plan {plan_id}")
    with engine.db.session() as session:
        checkpoints = list(session.scalars(select(Checkpoint).where(Checkpoint.plan_id == plan_id)))
    snapshots = [c.site_group_snapshot_id for c in checkpoints if c.site_group_snapshot_id]
    drop_images(plan, checkpoints)
    engine.driver(plan.source_site_id).call(
        f"remove the group of plan {plan_id}",
        lambda c: remove_group(c, plan_id, plan.site_group_id, snapshots),
    )


@handler("plan.delete")
def delete(job: Job) -> None:
    step(job, "remove the plan's group and snapshots", None, "plan.remove", job.resource_id)
