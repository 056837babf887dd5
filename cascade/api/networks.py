"""``/v1/networks``: tenant networks stretched over sites, every change an operation (202).

A network belongs to the project of the token that creates it (member role); it spans the
sites named, among those the caller sees. Servers join it through ``/v1/servers``' ``port``.
"""

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
from cascade.network.networks import NetworkService
from cascade.network.schemas import NetworkAccepted, NetworkEnvelope, NetworkIn, NetworkList
from cascade.services import Services

router = APIRouter(prefix="/v1/networks", tags=["networks"])
NetworkRef = Annotated[str, Path(min_length=1, max_length=255, description="Network name or id")]


def _service(svc: Services) -> NetworkService:
    return NetworkService(svc.db, svc.operations)


def _project(caller: AuthContext) -> str:
    if caller.project is None:
        raise Forbidden("Networks belong to a project: use a project-scoped token.")
    authorize(caller, "member", caller.project.id)
    return caller.project.id


def _accepted(
    svc: Services, response: Response, caller: AuthContext, operation: Operation
) -> NetworkAccepted:
    accepted(response, operation.id)
    return NetworkAccepted(
        network=_service(svc).show(operation.resource_id, visible_projects(caller)),
        operation=svc.operations.shown(operation),
    )


@router.post(
    "",
    status_code=202,
    response_model=NetworkAccepted,
    summary="Create a network over sites: one VNI and CIDR everywhere (an operation)",
    responses=error_responses(400, 401, 403, 409),
)
def create_network(
    body: NetworkIn,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> NetworkAccepted:
    project_id = _project(caller)
    operation = _service(svc).create(body, project_id, visible_projects(caller), idempotency_key)
    return _accepted(svc, response, caller, operation)


@router.get(
    "",
    response_model=NetworkList,
    summary="List networks and where each stands per site",
    responses=error_responses(401),
)
def list_networks(caller: Caller, svc: ServicesDep) -> NetworkList:
    return NetworkList(networks=_service(svc).list(visible_projects(caller)))


@router.get(
    "/{network}",
    response_model=NetworkEnvelope,
    summary="Show a network and its segment at each site",
    responses=error_responses(401, 404),
)
def show_network(network: NetworkRef, caller: Caller, svc: ServicesDep) -> NetworkEnvelope:
    return NetworkEnvelope(network=_service(svc).show(network, visible_projects(caller)))


def _act(
    svc: Services,
    response: Response,
    caller: AuthContext,
    network: str,
    action: str,
    key: str | None,
) -> NetworkAccepted:
    project_id = _project(caller)
    found = _service(svc).show(network, visible_projects(caller))
    operation = _service(svc).act(found.id, action, project_id, key)
    return _accepted(svc, response, caller, operation)


@router.post(
    "/{network}/sync",
    status_code=202,
    response_model=NetworkAccepted,
    summary="Make the network present at every site it spans again (an operation)",
    responses=error_responses(401, 403, 404, 409),
)
def sync_network(
    network: NetworkRef,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> NetworkAccepted:
    return _act(svc, response, caller, network, "sync", idempotency_key)


@router.delete(
    "/{network}",
    status_code=202,
    response_model=NetworkAccepted,
    summary="Delete the network at every site, then its VNI (an operation)",
    responses=error_responses(401, 403, 404, 409),
)
def delete_network(
    network: NetworkRef,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> NetworkAccepted:
    return _act(svc, response, caller, network, "delete", idempotency_key)
