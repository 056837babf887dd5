"""The Operations page: the operations the viewer may see, newest first, a page at a time
(filters by kind, status and resource; htmx re-reads the page's rows every two seconds), one
operation's steps with their SVG timeline, per-site outcome, attempts, worker, timings and
error (re-read until it finishes), and the server-create form for those who may act. HTTP
only (``cascade.ui``).

A page is read by keyset on (accepted time, id): the "Older" link carries the last row's
pair as its cursor, so a page costs the same however deep it is and rows accepted meanwhile
do not shift it. Two statements whatever the page size: the operations, then all their
steps, rendered as ``GET /v1/operations`` renders them; a server is created by
``ServerService.create`` as ``POST /v1/servers`` does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from cascade.compute.schemas import ServerIn
from cascade.compute.servers import ServerService
from cascade.db.models import Operation, OperationStep
from cascade.engine.operations import render
from cascade.engine.schemas import OperationOut, OperationStatus
from cascade.errors import BadRequest
from cascade.identity.policy import seen_by
from cascade.services import Services
from cascade.sites.registry import SiteRegistry
from cascade.ui import svg
from cascade.ui.session import Viewer, acting, viewer
from cascade.ui.web import STOP_POLLING, HtmlRoute, follow, page, services

router = APIRouter(prefix="/ui", route_class=HtmlRoute, include_in_schema=False)
Who = Annotated[Viewer, Depends(viewer)]

STATUSES: tuple[str, ...] = get_args(OperationStatus)
PAGE = 50
MAX_LIMIT = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR = re.compile(r"^(\d{1,17})-([0-9a-f]{1,64})$")


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: its last operation's acceptance time and id. In a URL:
    ``MICROSECONDS-ID`` (microseconds since the epoch, exact)."""

    created_at: datetime
    id: str

    def __str__(self) -> str:
        return f"{(self.created_at - _EPOCH) // timedelta(microseconds=1)}-{self.id}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        found = _CURSOR.match(text)
        if found is None:
            raise BadRequest(f"Invalid cursor {text!r}: follow the page's Older link.")
        micros, operation_id = found.groups()
        return cls(_EPOCH + timedelta(microseconds=int(micros)), operation_id)


@dataclass(frozen=True)
class Listing:
    """What the list shows: the filters given, where the page starts and how many rows."""

    filters: dict[str, str]
    before: Cursor | None
    limit: int

    def query(self, before: Cursor | None = None) -> str:
        """The URL query of the page of these filters and size that starts at ``before``."""
        extra = {"before": str(before)} if before is not None else {}
        if self.limit != PAGE:
            extra["limit"] = str(self.limit)
        return urlencode({**self.filters, **extra})


def listing(
    kind: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    resource: Annotated[str | None, Query(max_length=64)] = None,
    before: Annotated[str | None, Query(max_length=90)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = PAGE,
) -> Listing:
    if status and status not in STATUSES:
        raise BadRequest(f"Unknown status {status!r}: one of {', '.join(STATUSES)}.")
    given = {"kind": kind, "status": status, "resource": resource}
    filters = {name: value for name, value in given.items() if value}
    return Listing(filters, Cursor.parse(before) if before else None, limit)


Shown = Annotated[Listing, Depends(listing)]


def older_than(
    svc: Services, projects: set[str] | None, shown: Listing
) -> tuple[list[OperationOut], Cursor | None]:
    """One page of the operations ``projects`` see, newest first from ``shown.before``, and
    the cursor of the next (older) page if there is one."""
    newest_first = (Operation.created_at.desc(), Operation.id.desc())
    query = select(Operation).order_by(*newest_first).limit(shown.limit + 1)
    query = seen_by(query, Operation.project_id, projects)
    for name, column in (("kind", Operation.kind), ("status", Operation.status)):
        if name in shown.filters:
            query = query.where(column == shown.filters[name])
    if "resource" in shown.filters:
        query = query.where(Operation.resource_id == shown.filters["resource"])
    if (cursor := shown.before) is not None:
        query = query.where(
            (Operation.created_at < cursor.created_at)
            | ((Operation.created_at == cursor.created_at) & (Operation.id < cursor.id))
        )
    with svc.db.session() as session:
        found = list(session.scalars(query))
        page, more = found[: shown.limit], len(found) > shown.limit
        steps: dict[str, list[OperationStep]] = {}
        for step in session.scalars(
            select(OperationStep)
            .where(OperationStep.operation_id.in_([op.id for op in page]))
            .order_by(OperationStep.started_at, OperationStep.name)
        ):
            steps.setdefault(step.operation_id, []).append(step)
        rendered = [render(op, steps.get(op.id, [])) for op in page]
    last = page[-1] if page and more else None
    return rendered, Cursor(last.created_at, last.id) if last is not None else None


def _rows(svc: Services, who: Viewer, shown: Listing) -> dict[str, Any]:
    operations, older = older_than(svc, who.projects, shown)
    return {"operations": operations, "filters": shown.filters, "shown": shown, "older": older}


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
    fields, project_id = await acting(request, who)
    try:
        body = ServerIn.model_validate({k: fields[k] for k in _SERVER_FIELDS if k in fields})
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "form"
        raise BadRequest(f"Invalid server: {where}: {problem['msg']}.") from error
    svc = services(request)
    service = ServerService(svc.db, svc.operations)
    operation = await run_in_threadpool(service.create, body, project_id, who.projects, None)
    return follow(operation.id)
