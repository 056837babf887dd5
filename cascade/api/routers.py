"""``/v1/routers``: routes between a project's networks wherever their sites are, every
change an operation (202). A router is a site router at each site of its networks, joined by
a transit network of its own (docs/networks.md, "L3 between sites")."""

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
from cascade.network.routers import RouterService
from cascade.network.schemas import RouterAccepted, RouterEnvelope, RouterIn, RouterList
from cascade.services import Services

router = APIRouter(prefix="/v1/routers", tags=["routers"])
RouterRef = Annotated[str, Path(min_length=1, max_length=255, description="Router name or id")]


def _service(svc: Services) -> RouterService:
    return RouterService(svc.db, svc.operations)


def _project(caller: AuthContext) -> str:
    if caller.project is None:
        raise Forbidden("Routers belong to a project: use a project-scoped token.")
    authorize(caller, "member", caller.project.id)
    return caller.project.id


def _accepted(
    svc: Services, response: Response, caller: AuthContext, operation: Operation
) -> RouterAccepted:
    accepted(response, operation.id)
    return RouterAccepted(
        router=_service(svc).show(operation.resource_id, visible_projects(caller)),
        operation=svc.operations.shown(operation),
    )


@router.post(
    "",
    status_code=202,
    response_model=RouterAccepted,
    summary="Route between networks at any sites (an operation)",
    responses=error_responses(400, 401, 403, 404, 409),
)
def create_router(
    body: RouterIn,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> RouterAccepted:
    project_id = _project(caller)
    operation = _service(svc).create(body, project_id, visible_projects(caller), idempotency_key)
    return _accepted(svc, response, caller, operation)


@router.get("", response_model=RouterList, summary="List routers", responses=error_responses(401))
def list_routers(caller: Caller, svc: ServicesDep) -> RouterList:
    return RouterList(routers=_service(svc).list(visible_projects(caller)))


@router.get(
    "/{router}",
    response_model=RouterEnvelope,
    summary="Show a router: each site's router, transit address and routes",
    responses=error_responses(401, 404),
)
def show_router(router: RouterRef, caller: Caller, svc: ServicesDep) -> RouterEnvelope:
    return RouterEnvelope(router=_service(svc).show(router, visible_projects(caller)))


@router.delete(
    "/{router}",
    status_code=202,
    response_model=RouterAccepted,
    summary="Remove the router at every site (an operation)",
    responses=error_responses(401, 403, 404, 409),
)
def delete_router(
    router: RouterRef,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> RouterAccepted:
    project_id = _project(caller)
    found = _service(svc).show(router, visible_projects(caller))
    operation = _service(svc).act(found.id, "delete", project_id, idempotency_key)
    return _accepted(svc, response, caller, operation)
