"""One protection plan's page: its members, RPO (the age of its newest restorable checkpoint),
its checkpoints with their backup progress and freeze window, its restores with their
progress and RTO, and the last restore's steps as the operation timeline (``svg.timeline`` of
the restore's operation); a member may take a checkpoint. HTTP only (``cascade.ui``).

The plan is read by ``PlanService.show`` as ``GET /v1/protection-plans/{id}`` does; its
newest checkpoints (with their volumes' blocks summed per checkpoint) and restores (with
their target's name) are one query each here, and the last restore's operation is
``OperationService.get``: a fixed number of statements, however many there are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from cascade.db.models import Site
from cascade.db.protection_models import Checkpoint, CheckpointVolume, Restore
from cascade.errors import NotFound
from cascade.protection.plans import PlanService
from cascade.services import Services
from cascade.ui import svg
from cascade.ui.session import Viewer, acting, viewer
from cascade.ui.web import HtmlRoute, follow, page, services

router = APIRouter(prefix="/ui", route_class=HtmlRoute, include_in_schema=False)
Who = Annotated[Viewer, Depends(viewer)]
PlanRef = Annotated[str, Path(min_length=1, max_length=64)]
CHECKPOINTS = 50  # the newest, shown
RESTORES = 20


@dataclass(frozen=True)
class CheckpointRow:
    checkpoint: Checkpoint
    volumes: int
    done_blocks: int
    changed_blocks: int

    @property
    def freeze_window_s(self) -> float | None:
        first, last = self.checkpoint.first_freeze_at, self.checkpoint.last_thaw_at
        return (last - first).total_seconds() if first and last else None


@dataclass(frozen=True)
class RestoreRow:
    restore: Restore
    target: str

    @property
    def progress(self) -> str:
        """Blocks written of blocks over its volumes, and how many were verified."""
        volumes = list(self.restore.volumes.values())
        written = sum(int(v.get("written") or 0) for v in volumes)
        blocks = sum(int(v.get("blocks") or 0) for v in volumes)
        verified = sum(1 for v in volumes if v.get("verified"))
        return f"{written}/{blocks} blocks, {verified}/{len(volumes)} volumes verified"


def checkpoints_of(svc: Services, plan_id: str) -> list[CheckpointRow]:
    with svc.db.session() as session:
        found = list(
            session.scalars(
                select(Checkpoint)
                .where(Checkpoint.plan_id == plan_id)
                .order_by(Checkpoint.created_at.desc(), Checkpoint.id.desc())
                .limit(CHECKPOINTS)
            )
        )
        sums = {
            row.checkpoint_id: row
            for row in session.execute(
                select(
                    CheckpointVolume.checkpoint_id,
                    func.count().label("volumes"),
                    func.sum(CheckpointVolume.done_blocks).label("done"),
                    func.sum(CheckpointVolume.changed_blocks).label("changed"),
                )
                .where(CheckpointVolume.checkpoint_id.in_([c.id for c in found]))
                .group_by(CheckpointVolume.checkpoint_id)
            )
        }
    rows = []
    for checkpoint in found:
        summed = sums.get(checkpoint.id)
        counts = (summed.volumes, summed.done or 0, summed.changed or 0) if summed else (0, 0, 0)
        rows.append(CheckpointRow(checkpoint, *counts))
    return rows


def restores_of(svc: Services, plan_id: str) -> list[RestoreRow]:
    with svc.db.session() as session:
        rows = session.execute(
            select(Restore, Site.name)
            .join(Site, Site.id == Restore.target_site_id)
            .where(Restore.plan_id == plan_id)
            .order_by(Restore.created_at.desc(), Restore.id.desc())
            .limit(RESTORES)
        ).all()
    return [RestoreRow(restore, target) for restore, target in rows]


def _last_restore(svc: Services, who: Viewer, restores: list[RestoreRow]) -> dict[str, Any]:
    """The newest restore and the timeline of its operation's steps (none once the
    operation's record was pruned)."""
    if not restores:
        return {"last": None, "timeline": None}
    last = restores[0].restore
    try:
        operation = svc.operations.get(last.operation_id, who.projects)
    except NotFound:
        return {"last": last, "timeline": None}
    return {"last": last, "timeline": svg.timeline(operation)}


@router.get("/protection/plans/{plan}", response_class=HTMLResponse)
def plan_page(request: Request, who: Who, plan: PlanRef) -> HTMLResponse:
    svc = services(request)
    shown = PlanService(svc.db, svc.operations).show(plan, who.projects)
    restores = restores_of(svc, shown.id)
    return page(
        "plan.html",
        active="protection",
        viewer=who,
        plan=shown,
        checkpoints=checkpoints_of(svc, shown.id),
        restores=restores,
        **_last_restore(svc, who, restores),
    )


@router.post("/protection/plans/{plan}/checkpoints", response_class=HTMLResponse)
async def take_checkpoint(request: Request, who: Who, plan: PlanRef) -> Response:
    """Take a checkpoint as ``POST /v1/protection-plans/{id}/checkpoints`` does."""
    _fields, project_id = await acting(request, who)
    svc = services(request)
    plans = PlanService(svc.db, svc.operations)
    await run_in_threadpool(plans.show, plan, who.projects)
    _checkpoint, operation = await run_in_threadpool(plans.checkpoint, plan, project_id, None)
    return follow(operation.id)
