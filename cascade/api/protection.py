"""``/v1/protection-plans`` and ``/v1/checkpoints``: plans protecting a project's servers at
one site for another, and the checkpoints taken of them; every change an operation (202).
Bad input (a server of another project, an unknown target site, the source site as target)
is refused before anything is queued."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from cascade.api.deps import Caller
from cascade.api.errors import error_responses
from cascade.api.operations import IdempotencyKey, accepted
from cascade.api.services_dep import ServicesDep
from cascade.db.models import Operation
from cascade.errors import Forbidden
from cascade.identity.policy import authorize, visible_projects
from cascade.identity.tokens import AuthContext
from cascade.protection.plans import PlanService
from cascade.protection.schemas import (
    CheckpointAccepted,
    CheckpointEnvelope,
    CheckpointList,
    PlanAccepted,
    PlanEnvelope,
    PlanIn,
    PlanList,
)
from cascade.services import Services

router = APIRouter(prefix="/v1/protection-plans", tags=["protection"])
checkpoints = APIRouter(prefix="/v1/checkpoints", tags=["protection"])
PlanRef = Annotated[str, Path(min_length=1, max_length=64, description="Protection plan id")]
CheckpointRef = Annotated[str, Path(min_length=1, max_length=64, description="Checkpoint id")]


def _service(svc: Services) -> PlanService:
    return PlanService(svc.db, svc.operations)


def _project(caller: AuthContext) -> str:
    if caller.project is None:
        raise Forbidden("Protection plans belong to a project: use a project-scoped token.")
    authorize(caller, "member", caller.project.id)
    return caller.project.id


def _accepted(
    svc: Services, response: Response, caller: AuthContext, operation: Operation
) -> PlanAccepted:
    accepted(response, operation.id)
    return PlanAccepted(
        plan=_service(svc).show(operation.resource_id, visible_projects(caller)),
        operation=svc.operations.shown(operation),
    )


@router.post(
    "",
    status_code=202,
    response_model=PlanAccepted,
    summary="Protect servers of one site for another (an operation finds their volumes)",
    responses=error_responses(400, 401, 403, 409),
)
def create_plan(
    body: PlanIn,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> PlanAccepted:
    project_id = _project(caller)
    operation = _service(svc).create(body, project_id, visible_projects(caller), idempotency_key)
    return _accepted(svc, response, caller, operation)


@router.get("", response_model=PlanList, summary="List plans", responses=error_responses(401))
def list_plans(caller: Caller, svc: ServicesDep) -> PlanList:
    return PlanList(plans=_service(svc).plans(visible_projects(caller)))


@router.get(
    "/{plan}",
    response_model=PlanEnvelope,
    summary="Show a plan: its members in freeze order and their volumes",
    responses=error_responses(401, 404),
)
def show_plan(plan: PlanRef, caller: Caller, svc: ServicesDep) -> PlanEnvelope:
    return PlanEnvelope(plan=_service(svc).show(plan, visible_projects(caller)))


@router.delete(
    "/{plan}",
    status_code=202,
    response_model=PlanAccepted,
    summary="Delete a plan, its checkpoints' snapshots and its group at the site (an operation)",
    responses=error_responses(401, 403, 404, 409),
)
def delete_plan(
    plan: PlanRef,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> PlanAccepted:
    project_id = _project(caller)
    _service(svc).show(plan, visible_projects(caller))
    operation = _service(svc).delete(plan, project_id, idempotency_key)
    return _accepted(svc, response, caller, operation)


@router.post(
    "/{plan}/checkpoints",
    status_code=202,
    response_model=CheckpointAccepted,
    summary="Take a checkpoint: freeze in order, one group snapshot, thaw in reverse",
    responses=error_responses(401, 403, 404, 409),
)
def take_checkpoint(
    plan: PlanRef,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> CheckpointAccepted:
    project_id = _project(caller)
    projects = visible_projects(caller)
    _service(svc).show(plan, projects)
    checkpoint_id, operation = _service(svc).checkpoint(plan, project_id, idempotency_key)
    accepted(response, operation.id)
    return CheckpointAccepted(
        checkpoint=_service(svc).show_checkpoint(checkpoint_id, projects),
        operation=svc.operations.shown(operation),
    )


@checkpoints.get(
    "", response_model=CheckpointList, summary="List checkpoints", responses=error_responses(401)
)
def list_checkpoints(caller: Caller, svc: ServicesDep) -> CheckpointList:
    return CheckpointList(checkpoints=_service(svc).checkpoints(visible_projects(caller)))


@checkpoints.get(
    "/{checkpoint}",
    response_model=CheckpointEnvelope,
    summary="Show a checkpoint: consistency point, per-volume snapshots, freeze window",
    responses=error_responses(401, 404),
)
def show_checkpoint(
    checkpoint: CheckpointRef, caller: Caller, svc: ServicesDep
) -> CheckpointEnvelope:
    return CheckpointEnvelope(
        checkpoint=_service(svc).show_checkpoint(checkpoint, visible_projects(caller))
    )
