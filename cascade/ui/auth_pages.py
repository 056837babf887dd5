"""Logging in and out of the dashboard, its root and its static files (htmx, the style
sheet), served by Cascade itself: no CDN. HTTP only (``cascade.ui``)."""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cascade.errors import CascadeError, NotFound
from cascade.ui import session
from cascade.ui.session import Viewer
from cascade.ui.web import HtmlRoute, form, page, services

router = APIRouter(prefix="/ui", route_class=HtmlRoute, include_in_schema=False)

_STATIC = {
    "htmx.min.js": "text/javascript; charset=utf-8",
    "cascade.css": "text/css; charset=utf-8",
    "htmx.LICENSE.txt": "text/plain; charset=utf-8",
}


@router.get("", response_class=HTMLResponse)
def root() -> Response:
    return RedirectResponse("/ui/sites", status_code=303)


@router.get("/static/{name}")
def static(name: Annotated[str, Path(max_length=64)]) -> Response:
    if name not in _STATIC:
        raise NotFound(f"No static file {name!r}.")
    content = resources.files("cascade.ui").joinpath("static", name).read_bytes()
    return Response(
        content, media_type=_STATIC[name], headers={"Cache-Control": "public, max-age=3600"}
    )


def _login_form(
    request: Request, status: int = 200, error: str | None = None, **values: str
) -> Response:
    csrf = session.login_csrf(request)
    response = page("login.html", status, csrf=csrf, error=error, values=values, viewer=None)
    session.remember_login_csrf(request, response, csrf)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return _login_form(request)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    fields = await form(request)
    try:
        ctx = await run_in_threadpool(session.log_in, request, services(request), fields)
    except CascadeError as error:
        if error.status == 403:
            raise
        kept = {k: fields[k] for k in ("user", "project", "domain") if k in fields}
        return _login_form(request, error.status, error.message, **kept)
    response = RedirectResponse("/ui/sites", status_code=303)
    session.start_session(request, response, ctx)
    return response


@router.post("/logout", response_class=HTMLResponse)
async def logout(request: Request, who: Annotated[Viewer, Depends(session.viewer)]) -> Response:
    fields = await form(request)
    who.check_csrf(fields)
    response = RedirectResponse("/ui/login", status_code=303)
    await run_in_threadpool(session.log_out, services(request), who, response)
    return response
