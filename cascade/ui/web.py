"""What every dashboard page shares: the Jinja2 environment over the package's templates,
the route class that turns a ``CascadeError`` into an HTML page (or a way back to the login
form), the process's services and the one form parser. HTTP only (``cascade.ui``)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape

from cascade.errors import BadRequest, CascadeError, Unauthorized
from cascade.services import Services

MAX_FORM_BYTES = 64 * 1024
LOGIN_PATH = "/ui/login"
# htmx stops polling an element whose answer has this status (a finished operation or job).
STOP_POLLING = 286

templates = Environment(
    loader=PackageLoader("cascade.ui", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    seconds = max(0.0, (datetime.now(UTC) - moment).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _clock(moment: datetime | None) -> str:
    return moment.strftime("%H:%M:%S") if moment is not None else "—"


templates.filters["ago"] = _ago
templates.filters["clock"] = _clock


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


# Pages load only Cascade's own script and style sheet, post only to Cascade, are never framed
# (no clickjacking of an action button) and are not kept by caches.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A rendered template (a whole page or an htmx fragment)."""
    html = templates.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def follow(operation_id: str) -> Response:
    """After a form accepted an operation: its page, which follows it live."""
    return RedirectResponse(f"/ui/operations/{operation_id}", status_code=303)


def to_login(request: Request) -> Response:
    """Back to the login form: a redirect, or for an htmx request the header htmx follows."""
    if request.headers.get("HX-Request") == "true":
        return Response(status_code=401, headers={"HX-Redirect": LOGIN_PATH})
    return RedirectResponse(LOGIN_PATH, status_code=303)


class HtmlRoute(APIRoute):
    """A dashboard route: a ``CascadeError`` becomes an HTML page with its status and
    message (``Unauthorized``: back to the login form), never the API's JSON body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthorized:
                return to_login(request)
            except CascadeError as error:
                return page("error.html", error.status, error=error, viewer=None)

        return run


async def form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as one value per field (the last one
    given), blank fields left out; an empty body is an empty form. Another type, or a body
    over 64 KiB, is a 400."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise BadRequest("The form is too large.")
    if not body:
        return {}
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        raise BadRequest("Expected a form (application/x-www-form-urlencoded).")
    try:
        pairs = parse_qsl(body.decode("utf-8"), strict_parsing=False)
    except UnicodeDecodeError as error:
        raise BadRequest("The form is not UTF-8.") from error
    return {name: value.strip() for name, value in pairs if value.strip()}
