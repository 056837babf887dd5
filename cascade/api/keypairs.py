"""``/v1/keypairs``: SSH public keys kept at every site of their project (operations, 202).

Keypairs are named per project; a member of the project manages them, a reader sees them.
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
from cascade.identity.policy import Need, authorize
from cascade.identity.tokens import AuthContext
from cascade.replication import keypairs
from cascade.replication.keypairs import (
    KeypairAccepted,
    KeypairEnvelope,
    KeypairIn,
    KeypairList,
    KeypairOut,
)
from cascade.services import Services

router = APIRouter(prefix="/v1/keypairs", tags=["keypairs"])
KeypairName = Annotated[str, Path(min_length=1, max_length=255, description="Keypair name")]


def _project(caller: AuthContext, need: Need) -> str:
    if caller.project is None:
        raise Forbidden("Keypairs belong to a project: use a project-scoped token.")
    authorize(caller, need, caller.project.id)
    return caller.project.id


def _service(svc: Services) -> keypairs.KeypairService:
    return keypairs.KeypairService(svc.db, svc.operations)


def _show(svc: Services, name_or_id: str, project_id: str) -> KeypairOut:
    return _service(svc).show(name_or_id, project_id)


def _accepted(
    svc: Services, response: Response, project_id: str, name: str, operation: Operation
) -> KeypairAccepted:
    accepted(response, operation.id)
    return KeypairAccepted(
        keypair=_show(svc, name, project_id), operation=svc.operations.shown(operation)
    )


@router.post(
    "",
    status_code=202,
    response_model=KeypairAccepted,
    summary="Put a public key at every site of the project (an operation)",
    responses=error_responses(400, 401, 403, 409),
)
def create_keypair(
    body: KeypairIn,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> KeypairAccepted:
    project_id = _project(caller, "member")
    operation = _service(svc).create(body, project_id, idempotency_key)
    return _accepted(svc, response, project_id, body.name, operation)


@router.get(
    "",
    response_model=KeypairList,
    summary="List the project's keypairs and where each stands per site",
    responses=error_responses(401, 403),
)
def list_keypairs(caller: Caller, svc: ServicesDep) -> KeypairList:
    project_id = _project(caller, "reader")
    return KeypairList(keypairs=_service(svc).list(project_id))


@router.get(
    "/{name}",
    response_model=KeypairEnvelope,
    summary="Show a keypair and its copy at each site",
    responses=error_responses(401, 403, 404),
)
def show_keypair(name: KeypairName, caller: Caller, svc: ServicesDep) -> KeypairEnvelope:
    return KeypairEnvelope(keypair=_show(svc, name, _project(caller, "reader")))


@router.delete(
    "/{name}",
    status_code=202,
    response_model=KeypairAccepted,
    summary="Remove a keypair from every site (an operation)",
    responses=error_responses(401, 403, 404, 409),
)
def delete_keypair(
    name: KeypairName,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> KeypairAccepted:
    project_id = _project(caller, "member")
    found = _show(svc, name, project_id)
    operation = _service(svc).act(found.id, "delete", project_id, idempotency_key)
    return _accepted(svc, response, project_id, name, operation)
