"""Dependencies shared by every router: the identity services and the caller's token (the
control plane's services, for Cascade's own routers, are ``services_dep``'s).

``Caller`` is the one way a route checks a token: it reads ``X-Auth-Token``, validates it
against the identity read model and yields the ``AuthContext``, or answers 401 saying why.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from cascade.errors import Unauthorized
from cascade.identity.services import IdentityServices
from cascade.identity.tokens import AuthContext, TokenError

_token_header = APIKeyHeader(
    name="X-Auth-Token", auto_error=False, description="A token from POST /identity/v3/auth/tokens"
)


async def identity_services(request: Request) -> IdentityServices:
    """The process's identity: what Keystone routes need (Cascade's app or an emulated
    region's)."""
    found: IdentityServices = request.app.state.services
    return found


IdentityDep = Annotated[IdentityServices, Depends(identity_services)]


async def caller(
    svc: IdentityDep, token: Annotated[str | None, Security(_token_header)]
) -> AuthContext:
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
