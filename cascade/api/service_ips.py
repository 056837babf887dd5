"""``/v1/service-ips``: an address of a network held by one server at a time, moved to
another by one audited operation (202); each move records its measured switchover time."""

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
from cascade.network.schemas import (
    ServiceIPAccepted,
    ServiceIPEnvelope,
    ServiceIPIn,
    ServiceIPList,
    ServiceIPMove,
)
from cascade.network.service_ips import ServiceIPService
from cascade.services import Services

router = APIRouter(prefix="/v1/service-ips", tags=["service IPs"])
ServiceIPRef = Annotated[str, Path(min_length=1, max_length=64, description="Service IP id")]


def _service(svc: Services) -> ServiceIPService:
    return ServiceIPService(svc.db, svc.operations)


def _project(caller: AuthContext) -> str:
    if caller.project is None:
        raise Forbidden("Service IPs belong to a project: use a project-scoped token.")
    authorize(caller, "member", caller.project.id)
    return caller.project.id


def _accepted(
    svc: Services, response: Response, caller: AuthContext, operation: Operation
) -> ServiceIPAccepted:
    accepted(response, operation.id)
    return ServiceIPAccepted(
        service_ip=_service(svc).show(operation.resource_id, visible_projects(caller)),
        operation=svc.operations.shown(operation),
    )


@router.post(
    "",
    status_code=202,
    response_model=ServiceIPAccepted,
    summary="Take an address of a network for a server on it (an operation)",
    responses=error_responses(400, 401, 403, 404, 409),
)
def create_service_ip(
    body: ServiceIPIn,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ServiceIPAccepted:
    project_id = _project(caller)
    operation = _service(svc).create(body, project_id, visible_projects(caller), idempotency_key)
    return _accepted(svc, response, caller, operation)


@router.get(
    "", response_model=ServiceIPList, summary="List service IPs", responses=error_responses(401)
)
def list_service_ips(caller: Caller, svc: ServicesDep) -> ServiceIPList:
    return ServiceIPList(service_ips=_service(svc).list(visible_projects(caller)))


@router.get(
    "/{service_ip}",
    response_model=ServiceIPEnvelope,
    summary="Show a service IP: its holder and last switchover",
    responses=error_responses(401, 404),
)
def show_service_ip(
    service_ip: ServiceIPRef, caller: Caller, svc: ServicesDep
) -> ServiceIPEnvelope:
    return ServiceIPEnvelope(service_ip=_service(svc).show(service_ip, visible_projects(caller)))


@router.post(
    "/{service_ip}/move",
    status_code=202,
    response_model=ServiceIPAccepted,
    summary="Move the address to another server on its network (an operation)",
    responses=error_responses(400, 401, 403, 404, 409),
)
def move_service_ip(
    service_ip: ServiceIPRef,
    body: ServiceIPMove,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ServiceIPAccepted:
    project_id = _project(caller)
    projects = visible_projects(caller)
    operation = _service(svc).move(service_ip, body.to, project_id, projects, idempotency_key)
    return _accepted(svc, response, caller, operation)


@router.delete(
    "/{service_ip}",
    status_code=202,
    response_model=ServiceIPAccepted,
    summary="Free the address at every site (an operation)",
    responses=error_responses(401, 403, 404, 409),
)
def delete_service_ip(
    service_ip: ServiceIPRef,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ServiceIPAccepted:
    project_id = _project(caller)
    _service(svc).show(service_ip, visible_projects(caller))
    operation = _service(svc).act(service_ip, "delete", project_id, idempotency_key)
    return _accepted(svc, response, caller, operation)
