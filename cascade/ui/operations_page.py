"""The Operations page: the newest operations the viewer may see (filters by kind, status and
resource; htmx re-reads the rows every two seconds), one operation's steps with their SVG
timeline, per-site outcome, attempts, worker, timings and error (re-read until it finishes),
and the server-create form for those who may act. HTTP only (``cascade.ui``).

Lists come from ``OperationService.list`` (one query for the operations, one for all their
steps), the same call as ``GET /v1/operations``; a server is created by ``ServerService.create``
as ``POST /v1/servers`` does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from cascade.compute.schemas import ServerIn
from cascade.compute.servers import ServerService
from cascade.engine.schemas import OperationStatus
from cascade.errors import BadRequest
from cascade.services import Services
from cascade.sites.registry import SiteRegistry
from cascade.ui import svg
from cascade.ui.session import Viewer, viewer
from cascade.ui.web import HtmlRoute, form, page, services

router = APIRouter(prefix="/ui", route_class=HtmlRoute, include_in_schema=False)
Who = Annotated[Viewer, Depends(viewer)]

STATUSES: tuple[str, ...] = get_args(OperationStatus)
PAGE = 50
MAX_LIMIT = 1000
# htmx stops polling an element whose answer has this status.
STOP_POLLING = 286


@dataclass(frozen=True)
class Listing:
    """What the list shows: the filters given and how many rows."""

    filters: dict[str, str]
    limit: int


def listing(
    kind: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    resource: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = PAGE,
) -> Listing:
    if status and status not in STATUSES:
        raise BadRequest(f"Unknown status {status!r}: one of {', '.join(STATUSES)}.")
    given = {"kind": kind, "status": status, "resource": resource}
    return Listing({name: value for name, value in given.items() if value}, limit)


Shown = Annotated[Listing, Depends(listing)]


def _rows(svc: Services, who: Viewer, shown: Listing) -> dict[str, Any]:
    filters, limit = shown.filters, shown.limit
    operations = svc.operations.list(
        who.projects,
        status=filters.get("status"),
        kind=filters.get("kind"),
        resource_id=filters.get("resource"),
        limit=limit,
    )
    return {
        "operations": operations,
        "filters": filters,
        "limit": limit,
        "more": len(operations) == limit and limit < MAX_LIMIT,
        "next_limit": min(MAX_LIMIT, limit + PAGE),
    }


@router.get("/operations", response_class=HTMLResponse)
def operations_page(request: Request, who: Who, shown: Shown) -> HTMLResponse:
    svc = services(request)
    registry = SiteRegistry(svc.db, svc.credentials, svc.settings.effective_public_url)
    sites = registry.list(who.projects) if who.can_act else []
    return page(
        "operations.html",
        active="operations",
        viewer=who,
        statuses=STATUSES,
        sites=sites,
        **_rows(svc, who, shown),
    )


@router.get("/operations/rows", response_class=HTMLResponse)
def operation_rows(request: Request, who: Who, shown: Shown) -> HTMLResponse:
    return page("_operation_rows.html", **_rows(services(request), who, shown))


OperationId = Annotated[str, Path(min_length=1, max_length=64)]


def _operation(svc: Services, who: Viewer, operation_id: str) -> dict[str, Any]:
    operation = svc.operations.get(operation_id, who.projects)
    return {"op": operation, "timeline": svg.timeline(operation), "viewer": who}


@router.get("/operations/{operation_id}", response_class=HTMLResponse)
def operation_page(request: Request, who: Who, operation_id: OperationId) -> HTMLResponse:
    return page(
        "operation.html", active="operations", **_operation(services(request), who, operation_id)
    )


@router.get("/operations/{operation_id}/body", response_class=HTMLResponse)
def operation_body(request: Request, who: Who, operation_id: OperationId) -> HTMLResponse:
    found = _operation(services(request), who, operation_id)
    finished = found["op"].status in ("succeeded", "failed")
    return page("_operation_body.html", STOP_POLLING if finished else 200, **found)


_SERVER_FIELDS = ("name", "site", "flavor", "image", "network")


@router.post("/servers", response_class=HTMLResponse)
async def create_server(request: Request, who: Who) -> Response:
    """Create a server as ``POST /v1/servers`` does, then follow its operation."""
    fields = await form(request)
    who.check_csrf(fields)
    project_id = who.project_id()
    try:
        body = ServerIn.model_validate({k: fields[k] for k in _SERVER_FIELDS if k in fields})
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "form"
        raise BadRequest(f"Invalid server: {where}: {problem['msg']}.") from error
    svc = services(request)
    service = ServerService(svc.db, svc.operations)
    _server, operation_id = await run_in_threadpool(
        service.create, body, project_id, who.projects, None
    )
    return RedirectResponse(f"/ui/operations/{operation_id}", status_code=303)
