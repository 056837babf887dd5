"""``/v1/servers``: servers at any site, every change carried out by an operation (202).

Creating needs a project-scoped token with the member role (or admin); the server belongs to
that project and lands at the named site or at the project's least loaded one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from cascade.api.deps import Caller
from cascade.api.errors import error_responses
from cascade.api.operations import IdempotencyKey, accepted
from cascade.api.services_dep import ServicesDep
from cascade.compute import servers
from cascade.compute.schemas import (
    ServerAccepted,
    ServerAction,
    ServerEnvelope,
    ServerIn,
    ServerList,
    ServerOut,
)
from cascade.db.models import Operation
from cascade.errors import Forbidden
from cascade.identity.policy import authorize, visible_projects
from cascade.identity.tokens import AuthContext
from cascade.services import Services

router = APIRouter(prefix="/v1/servers", tags=["servers"])
ServerRef = Annotated[str, Path(min_length=1, max_length=64, description="Server id")]


def _service(svc: Services) -> servers.ServerService:
    return servers.ServerService(svc.db, svc.operations)


def _show(svc: Services, server_id: str, projects: set[str] | None) -> ServerOut:
    return _service(svc).show(server_id, projects)


def _accepted(
    svc: Services, response: Response, caller: AuthContext, operation: Operation
) -> ServerAccepted:
    accepted(response, operation.id)
    return ServerAccepted(
        server=_show(svc, operation.resource_id, visible_projects(caller)),
        operation=svc.operations.shown(operation),
    )


@router.post(
    "",
    status_code=202,
    response_model=ServerAccepted,
    summary="Create a server at a site (an operation)",
    responses=error_responses(400, 401, 403, 404, 409),
)
def create_server(
    body: ServerIn,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ServerAccepted:
    if caller.project is None:
        raise Forbidden("Creating a server needs a project-scoped token.")
    authorize(caller, "member", caller.project.id)
    operation = _service(svc).create(
        body, caller.project.id, visible_projects(caller), idempotency_key
    )
    return _accepted(svc, response, caller, operation)


@router.get(
    "",
    response_model=ServerList,
    summary="List servers across all sites",
    responses=error_responses(400, 401),
)
def list_servers(
    caller: Caller,
    svc: ServicesDep,
    site: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
) -> ServerList:
    return ServerList(servers=_service(svc).list(visible_projects(caller), site))


@router.get(
    "/{server_id}",
    response_model=ServerEnvelope,
    summary="Show a server",
    responses=error_responses(401, 404),
)
def show_server(server_id: ServerRef, caller: Caller, svc: ServicesDep) -> ServerEnvelope:
    return ServerEnvelope(server=_show(svc, server_id, visible_projects(caller)))


def _act(
    svc: Services,
    caller: AuthContext,
    response: Response,
    server_id: str,
    action: str,
    key: str | None,
) -> ServerAccepted:
    found = _show(svc, server_id, visible_projects(caller))
    authorize(caller, "member", found.project_id)
    operation = _service(svc).act(server_id, action, found.project_id, key)
    return _accepted(svc, response, caller, operation)


@router.post(
    "/{server_id}/{action}",
    status_code=202,
    response_model=ServerAccepted,
    summary="Reboot, stop or start a server (an operation)",
    responses=error_responses(400, 401, 403, 404, 409),
)
def server_action(
    server_id: ServerRef,
    action: ServerAction,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ServerAccepted:
    return _act(svc, caller, response, server_id, action, idempotency_key)


@router.delete(
    "/{server_id}",
    status_code=202,
    response_model=ServerAccepted,
    summary="Delete a server (an operation)",
    responses=error_responses(401, 403, 404, 409),
)
def delete_server(
    server_id: ServerRef,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ServerAccepted:
    return _act(svc, caller, response, server_id, "delete", idempotency_key)
