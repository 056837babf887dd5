"""``/v1/restores``: bring a checkpoint back at a site (an operation, 202), its mapping of
flavors, networks and images checked at that site first (a 400 naming what it lacks); each
restore's per-volume progress, verification and RTO."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from cascade.api.deps import Caller
from cascade.api.errors import error_responses
from cascade.api.operations import IdempotencyKey, accepted
from cascade.api.services_dep import ServicesDep
from cascade.api.sites import site_registry
from cascade.errors import Forbidden
from cascade.identity.policy import authorize, visible_projects
from cascade.protection.restores import RestoreService
from cascade.protection.schemas import RestoreAccepted, RestoreEnvelope, RestoreIn, RestoreList
from cascade.services import Services
from cascade.sites.driver import SiteDriver

router = APIRouter(prefix="/v1/restores", tags=["protection"])
RestoreRef = Annotated[str, Path(min_length=1, max_length=64, description="Restore id")]


def _service(svc: Services) -> RestoreService:
    registry = site_registry(svc)
    return RestoreService(svc.db, svc.operations, lambda site: SiteDriver(registry.access(site)))


@router.post(
    "",
    status_code=202,
    response_model=RestoreAccepted,
    summary="Restore a checkpoint at a site: volumes from chunks, verified, then servers",
    responses=error_responses(400, 401, 403, 502),
)
def create_restore(
    body: RestoreIn,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> RestoreAccepted:
    if caller.project is None:
        raise Forbidden("Restores belong to a project: use a project-scoped token.")
    authorize(caller, "member", caller.project.id)
    projects = visible_projects(caller)
    operation = _service(svc).create(body, caller.project.id, projects, idempotency_key)
    accepted(response, operation.id)
    return RestoreAccepted(
        restore=_service(svc).show(operation.resource_id, projects),
        operation=svc.operations.shown(operation),
    )


@router.get("", response_model=RestoreList, summary="List restores", responses=error_responses(401))
def list_restores(caller: Caller, svc: ServicesDep) -> RestoreList:
    return RestoreList(restores=_service(svc).restores(visible_projects(caller)))


@router.get(
    "/{restore}",
    response_model=RestoreEnvelope,
    summary="Show a restore: per-volume progress and verification, servers, RTO",
    responses=error_responses(401, 404),
)
def show_restore(restore: RestoreRef, caller: Caller, svc: ServicesDep) -> RestoreEnvelope:
    return RestoreEnvelope(restore=_service(svc).show(restore, visible_projects(caller)))
