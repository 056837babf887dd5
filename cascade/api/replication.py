"""``/v1/replication/policies`` and ``/v1/replication/jobs``: policies keeping one kind of a
project's resources (images, flavors, security groups, keypairs) at its sites, and the jobs
that run them, with per-site, per-resource items; every change an operation (202). Bad input
(an unknown kind or conflict rule, a site outside the project) is refused, naming it, before
anything is queued. Importing this module adds replication's families to ``/metrics``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from cascade.api.deps import Caller
from cascade.api.errors import error_responses
from cascade.api.operations import IdempotencyKey, accepted
from cascade.api.services_dep import ServicesDep
from cascade.db.models import Operation
from cascade.engine import metrics
from cascade.errors import Forbidden
from cascade.identity.policy import authorize, visible_projects
from cascade.identity.tokens import AuthContext
from cascade.replication import metrics as replication_metrics
from cascade.replication.policies import PolicyService
from cascade.replication.schemas import (
    JobAccepted,
    JobEnvelope,
    JobList,
    PolicyAccepted,
    PolicyEnvelope,
    PolicyIn,
    PolicyList,
)
from cascade.services import Services

router = APIRouter(prefix="/v1/replication", tags=["replication"])
PolicyRef = Annotated[str, Path(min_length=1, max_length=64, description="Policy id")]
JobRef = Annotated[str, Path(min_length=1, max_length=64, description="Job id")]
metrics.extend(replication_metrics.families)


def _service(svc: Services) -> PolicyService:
    return PolicyService(svc.db, svc.operations)


def _project(caller: AuthContext) -> str:
    if caller.project is None:
        raise Forbidden("Replication policies belong to a project: use a project-scoped token.")
    authorize(caller, "member", caller.project.id)
    return caller.project.id


def _accepted(
    svc: Services, response: Response, caller: AuthContext, operation: Operation
) -> PolicyAccepted:
    accepted(response, operation.id)
    return PolicyAccepted(
        policy=_service(svc).show(operation.resource_id, visible_projects(caller)),
        operation=svc.operations.shown(operation),
    )


@router.post(
    "/policies",
    status_code=202,
    response_model=PolicyAccepted,
    summary="Keep a kind of the project's resources at its sites (its first job starts)",
    responses=error_responses(400, 401, 403, 409),
)
def create_policy(
    body: PolicyIn,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> PolicyAccepted:
    operation = _service(svc).create(body, _project(caller), idempotency_key)
    return _accepted(svc, response, caller, operation)


@router.get(
    "/policies", response_model=PolicyList, summary="List policies", responses=error_responses(401)
)
def list_policies(caller: Caller, svc: ServicesDep) -> PolicyList:
    return PolicyList(policies=_service(svc).listing(visible_projects(caller)))


@router.get(
    "/policies/{policy}",
    response_model=PolicyEnvelope,
    summary="Show a policy: its sites, last job and the audit's drift per site",
    responses=error_responses(401, 404),
)
def show_policy(policy: PolicyRef, caller: Caller, svc: ServicesDep) -> PolicyEnvelope:
    return PolicyEnvelope(policy=_service(svc).show(policy, visible_projects(caller)))


@router.delete(
    "/policies/{policy}",
    status_code=202,
    response_model=PolicyAccepted,
    summary="Delete a policy (what it put at the sites stays there)",
    responses=error_responses(401, 403, 404, 409),
)
def delete_policy(
    policy: PolicyRef,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> PolicyAccepted:
    _project(caller)
    projects = visible_projects(caller)
    operation = _service(svc).act(policy, "delete", projects, "deleted", idempotency_key)
    return _accepted(svc, response, caller, operation)


@router.post(
    "/policies/{policy}/jobs",
    status_code=202,
    response_model=JobAccepted,
    summary="Run a policy now: a job brings every target site to the desired state",
    responses=error_responses(401, 403, 404, 409),
)
def run_policy(
    policy: PolicyRef,
    caller: Caller,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> JobAccepted:
    _project(caller)
    projects = visible_projects(caller)
    service = _service(svc)
    operation = service.act(policy, "sync", projects, "requested", idempotency_key)
    accepted(response, operation.id)
    return JobAccepted(
        job=service.job(service.job_of(operation.id), projects),
        operation=svc.operations.shown(operation),
    )


@router.get(
    "/jobs",
    response_model=JobList,
    summary="List jobs, newest first (items by status)",
    responses=error_responses(401),
)
def list_jobs(
    caller: Caller,
    svc: ServicesDep,
    policy: Annotated[str | None, Query(max_length=64, description="Only this policy's")] = None,
) -> JobList:
    return JobList(jobs=_service(svc).jobs(visible_projects(caller), policy))


@router.get(
    "/jobs/{job}",
    response_model=JobEnvelope,
    summary="Show a job with its items: per site and resource, action, status and progress",
    responses=error_responses(401, 404),
)
def show_job(job: JobRef, caller: Caller, svc: ServicesDep) -> JobEnvelope:
    return JobEnvelope(job=_service(svc).job(job, visible_projects(caller)))
