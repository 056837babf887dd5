"""Dependencies shared by every router: the process's services and the caller's token.

``Caller`` is the one way a route checks a token: it reads ``X-Auth-Token``, validates it
against the identity read model and yields the ``AuthContext``, or answers 401 saying why.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request, Security
from fastapi.security import APIKeyHeader

from cascade.errors import BadRequest, Unauthorized
from cascade.identity.tokens import AuthContext, TokenError
from cascade.services import Services

_token_header = APIKeyHeader(
    name="X-Auth-Token", auto_error=False, description="A token from POST /identity/v3/auth/tokens"
)


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]


def caller(svc: ServicesDep, token: Annotated[str | None, Security(_token_header)]) -> AuthContext:
    if not token:
        raise Unauthorized(
            "The request you have made requires authentication: no X-Auth-Token header."
        )
    try:
        return svc.check_token(token)
    except TokenError as error:
        raise Unauthorized(
            f"The request you have made requires authentication: the token is invalid: {error}."
        ) from error


Caller = Annotated[AuthContext, Depends(caller)]


def strict_query(request: Request) -> None:
    """Refuse query parameters a route does not declare, and repeated ones: a typo in a
    filter must not silently list everything."""
    route = request.scope.get("route")
    declared = _declared_query(request.app, getattr(route, "path", ""), request.method)
    seen: set[str] = set()
    for name, _value in request.query_params.multi_items():
        if name not in declared:
            raise BadRequest(f"Invalid input: unknown query parameter {name!r}")
        if name in seen:
            raise BadRequest(f"Invalid input: query parameter {name!r} given more than once")
        seen.add(name)


def _declared_query(app: FastAPI, path: str, method: str) -> set[str]:
    cache: dict[tuple[str, str], set[str]] = app.state.__dict__.setdefault("query_names", {})
    key = (path, method)
    if key not in cache:
        operation = app.openapi().get("paths", {}).get(path, {}).get(method.lower(), {})
        cache[key] = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    return cache[key]
