"""The API's routes as its OpenAPI document states them: which methods a path allows and which
query parameters an operation declares. Used to answer 405 with a true ``Allow`` header and to
refuse undeclared or repeated query parameters (a mistyped filter must not list everything).
And ``behind_prefix``: an included router that declines a path outside its prefix at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from starlette._utils import get_route_path  # what Starlette's routes match on
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from cascade.errors import BadRequest


@dataclass(frozen=True)
class _Template:
    parts: tuple[str, ...]
    query: dict[str, frozenset[str]]  # method -> declared query parameter names

    def matches(self, segments: list[str]) -> bool:
        return len(self.parts) == len(segments) and all(
            part == segment or (part.startswith("{") and bool(segment))
            for part, segment in zip(self.parts, segments, strict=True)
        )


class RouteTable:
    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._templates: list[_Template] | None = None

    def _all(self) -> list[_Template]:
        if self._templates is None:
            self._templates = [
                _Template(
                    tuple(path.rstrip("/").split("/")),
                    {
                        method.upper(): frozenset(
                            p["name"] for p in operation.get("parameters", []) if p["in"] == "query"
                        )
                        for method, operation in operations.items()
                    },
                )
                for path, operations in self._app.openapi().get("paths", {}).items()
            ]
        return self._templates

    def _matching(self, path: str) -> list[_Template]:
        segments = path.rstrip("/").split("/")
        return [template for template in self._all() if template.matches(segments)]

    def allowed_methods(self, path: str) -> list[str]:
        return sorted({method for t in self._matching(path) for method in t.query})

    def check_query(self, method: str, path: str, query_string: str) -> None:
        """Raise 400 for an undeclared or repeated parameter. Unknown paths and methods are
        left to routing (404, 405)."""
        operations = [t.query[method] for t in self._matching(path) if method in t.query]
        if not operations:
            return
        declared = frozenset().union(*operations)
        seen: set[str] = set()
        for name, _value in parse_qsl(query_string, keep_blank_values=True):
            if name not in declared:
                raise BadRequest(f"Invalid input: unknown query parameter {name!r}")
            if name in seen:
                raise BadRequest(f"Invalid input: query parameter {name!r} given more than once")
            seen.add(name)


class StrictQuery:
    """ASGI middleware: refuse undeclared or repeated query parameters before routing.
    Requests without a query string (the hot paths) pass untouched."""

    def __init__(self, app: ASGIApp, table: RouteTable) -> None:
        self.app = app
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            try:
                self.table.check_query(
                    scope["method"], scope["path"], scope["query_string"].decode("latin-1")
                )
            except BadRequest as error:
                await JSONResponse(error.body(), status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Prefixed(APIRouter):
    """A router holding one router whose routes all start with ``root``, its prefix's fixed
    part (up to a path parameter). FastAPI tries every included router's routes in turn for
    each request, a regular expression and its bookkeeping each (about 40 us a router; the
    app includes over 50), so a route near the end cost ~2 ms of CPU to find; this declines a
    path outside ``root`` with one string comparison, on the path Starlette's own routes match
    (``get_route_path``: the request's past its root path)."""

    def __init__(self, router: APIRouter, root: str) -> None:
        super().__init__()
        self.root = root
        self.include_router(router)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if not get_route_path(scope).startswith(self.root):
            return Match.NONE, {}
        return super().matches(scope)


def behind_prefix(router: APIRouter) -> APIRouter:
    """``router`` behind a check of its prefix (as it is, if it has none or begins with a
    path parameter)."""
    root = router.prefix.split("{", 1)[0]
    return _Prefixed(router, root) if root else router
