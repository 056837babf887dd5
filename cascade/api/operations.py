"""``/v1/operations``: what happened to every accepted request, step by step and per site;
``/v1/probes``: an operation of empty steps (one by default), to check or measure the engine."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Path, Query, Response

from cascade.api.deps import Caller
from cascade.api.errors import error_responses
from cascade.api.services_dep import ServicesDep
from cascade.engine import probe
from cascade.engine.schemas import OperationEnvelope, OperationList, OperationStatus, ProbeIn
from cascade.errors import Forbidden
from cascade.identity.policy import authorize, visible_projects

router = APIRouter(prefix="/v1/operations", tags=["operations"])
probes = APIRouter(prefix="/v1/probes", tags=["operations"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Repeat a request with the same key to get the same operation back, run once",
    ),
]


def accepted(response: Response, operation_id: str) -> None:
    """202's Location header: where to follow the operation."""
    response.headers["Location"] = f"/v1/operations/{operation_id}"


@router.get(
    "",
    response_model=OperationList,
    summary="List operations, newest first",
    responses=error_responses(400, 401),
)
def list_operations(
    caller: Caller,
    svc: ServicesDep,
    status: Annotated[OperationStatus | None, Query()] = None,
    kind: Annotated[str | None, Query(max_length=64, examples=["server.create"])] = None,
    resource_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> OperationList:
    return OperationList(
        operations=svc.operations.list(
            visible_projects(caller),
            status=status,
            kind=kind,
            resource_id=resource_id,
            limit=limit,
        )
    )


@router.get(
    "/{operation_id}",
    response_model=OperationEnvelope,
    summary="Show an operation: state, steps, per-site progress, timings, error",
    responses=error_responses(401, 404),
)
def show_operation(
    operation_id: Annotated[str, Path(min_length=1, max_length=64)],
    caller: Caller,
    svc: ServicesDep,
) -> OperationEnvelope:
    return OperationEnvelope(operation=svc.operations.get(operation_id, visible_projects(caller)))


@probes.post(
    "",
    status_code=202,
    response_model=OperationEnvelope,
    summary="Send a probe through the queue and a worker (an operation of empty steps)",
    responses=error_responses(400, 401, 403, 409),
)
def probe_engine(
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    body: Annotated[ProbeIn | None, Body()] = None,
    idempotency_key: IdempotencyKey = None,
) -> OperationEnvelope:
    if caller.project is None:
        raise Forbidden("A probe needs a project-scoped token.")
    authorize(caller, "member", caller.project.id)
    steps = (body or ProbeIn()).steps
    operation = probe.submit(svc.operations, caller.project.id, steps, idempotency_key)
    accepted(response, operation.id)
    return OperationEnvelope(operation=svc.operations.shown(operation))
