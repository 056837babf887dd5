"""One replication job's page: its policy, reason, status and operation, then per site how
many of its resources are done, running, pending, drifted or failed with the bytes copied,
and per resource (site, name) its action, status, bytes and error; re-read every two seconds
until the job finishes. A member may run the policy again (a new job). HTTP only
(``cascade.ui``).

Read by ``PolicyService.job`` and ``PolicyService.show`` as ``GET /v1/replication/jobs/{id}``
and ``GET /v1/replication/policies/{id}`` do: a fixed number of statements, however many
resources and sites the job has."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cascade.replication.policies import PolicyService
from cascade.replication.schemas import JobOut
from cascade.services import Services
from cascade.ui.session import Viewer, acting, viewer
from cascade.ui.web import STOP_POLLING, HtmlRoute, page, services

router = APIRouter(prefix="/ui", route_class=HtmlRoute, include_in_schema=False)
Who = Annotated[Viewer, Depends(viewer)]
Ref = Annotated[str, Path(min_length=1, max_length=64)]
FINISHED = ("succeeded", "failed")


@dataclass
class SiteProgress:
    """One site's part of a job."""

    site: str
    statuses: Counter[str] = field(default_factory=Counter)
    bytes_done: int = 0
    bytes_total: int = 0

    @property
    def percent(self) -> float | None:
        return round(100.0 * self.bytes_done / self.bytes_total, 1) if self.bytes_total else None


def per_site(job: JobOut) -> list[SiteProgress]:
    found: dict[str, SiteProgress] = {}
    for item in job.items or []:
        site = found.setdefault(item.site, SiteProgress(item.site))
        site.statuses[item.status] += 1
        site.bytes_done += item.bytes_done or 0
        site.bytes_total += item.bytes_total or 0
    return [found[name] for name in sorted(found)]


def _job(svc: Services, who: Viewer, job_id: str) -> dict[str, Any]:
    service = PolicyService(svc.db, svc.operations)
    job = service.job(job_id, who.projects)
    return {
        "job": job,
        "policy": service.show(job.policy_id, who.projects),
        "sites": per_site(job),
        "viewer": who,
    }


@router.get("/replication/jobs/{job}", response_class=HTMLResponse)
def job_page(request: Request, who: Who, job: Ref) -> HTMLResponse:
    return page("job.html", active="replication", **_job(services(request), who, job))


@router.get("/replication/jobs/{job}/body", response_class=HTMLResponse)
def job_body(request: Request, who: Who, job: Ref) -> HTMLResponse:
    found = _job(services(request), who, job)
    finished = found["job"].status in FINISHED
    return page("_job_body.html", STOP_POLLING if finished else 200, **found)


@router.post("/replication/policies/{policy}/jobs", response_class=HTMLResponse)
async def run_policy(request: Request, who: Who, policy: Ref) -> Response:
    """Run the policy again, as ``POST /v1/replication/policies/{id}/jobs`` does, and follow
    its new job."""
    await acting(request, who)
    svc = services(request)
    service = PolicyService(svc.db, svc.operations)
    operation = await run_in_threadpool(
        service.act, policy, "sync", who.projects, "requested", None
    )
    job_id = await run_in_threadpool(service.job_of, operation.id)
    return RedirectResponse(f"/ui/replication/jobs/{job_id}", status_code=303)
