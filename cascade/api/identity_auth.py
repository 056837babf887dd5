"""Keystone ``/identity/v3/auth``: issue, validate, check and revoke tokens (with a password,
a token or an application credential, scoped to a project, a domain, the system or a trust;
a token from a trust with ``remaining_uses`` uses one up); the caller's projects, domains,
system and catalog. And ``/identity/v3/users/{id}/password``: a user
changes its own password by giving the original one."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Query, Request, Response

from cascade.api.deps import Caller, IdentityDep
from cascade.api.errors import error_responses
from cascade.db.models import SYSTEM_TARGET
from cascade.errors import Forbidden, NotFound, Unauthorized
from cascade.identity import app_credentials, render, trusts
from cascade.identity.delegations import delegations
from cascade.identity.kinds import USER
from cascade.identity.passwords import verify_password
from cascade.identity.schemas import (
    AuthRequest,
    CatalogResponse,
    DomainList,
    PasswordChangeBody,
    ProjectList,
    SystemList,
    TokenResponse,
)
from cascade.identity.services import IdentityServices
from cascade.identity.tokens import AuthContext, TokenError

router = APIRouter(prefix="/identity/v3/auth", tags=["identity: auth"])
passwords = APIRouter(prefix="/identity/v3/users", tags=["identity: auth"])

SubjectToken = Annotated[str, Header(alias="X-Subject-Token", min_length=1, max_length=1024)]
NoCatalog = Annotated[
    str | None, Query(description="Present (any value): leave the catalog out of the body.")
]


def _token_response(
    ctx: AuthContext, svc: IdentityServices, nocatalog: str | None, status: int
) -> Response:
    snapshot = svc.identity.cached()
    body = render.token_body(ctx, snapshot, with_catalog=nocatalog is None)
    if ctx.app_cred is not None:
        found = delegations(svc.db, snapshot)
        body["token"]["application_credential"] = app_credentials.token_section(ctx.app_cred, found)
    trusts.token_sections(ctx, snapshot, body["token"])
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={"X-Subject-Token": ctx.token_id},
    )


def _subject(caller: AuthContext, svc: IdentityServices, subject_token: str) -> AuthContext:
    try:
        subject = svc.tokens.validate(subject_token, svc.identity.cached())
    except TokenError as error:
        raise NotFound(f"Failed to validate token: the token is invalid: {error}.") from error
    if not caller.is_admin and subject.user.id != caller.user.id:
        raise Forbidden("You are not authorized to perform the requested action on that token.")
    return subject


_TOKEN_HEADERS = {"X-Subject-Token": {"schema": {"type": "string"}, "description": "The token"}}


@router.post(
    "/tokens",
    status_code=201,
    response_model=TokenResponse,
    responses={
        201: {"model": TokenResponse, "headers": _TOKEN_HEADERS, "description": "Token issued"},
        **error_responses(400, 401, 403, 404),
    },
    summary="Authenticate and issue a token",
)
def issue_token(body: AuthRequest, svc: IdentityDep, nocatalog: NoCatalog = None) -> Response:
    ctx = svc.tokens.issue(body.auth, svc.snapshot())
    if ctx.trust is not None and ctx.trust.remaining_uses is not None:
        trusts.consume_use(svc.store, ctx.trust.id)
    return _token_response(ctx, svc, nocatalog, 201)


@router.get(
    "/tokens",
    response_model=TokenResponse,
    responses={
        200: {"model": TokenResponse, "headers": _TOKEN_HEADERS, "description": "Token is valid"},
        **error_responses(400, 401, 403, 404),
    },
    summary="Validate a token",
)
async def validate_token(
    caller: Caller, svc: IdentityDep, subject_token: SubjectToken, nocatalog: NoCatalog = None
) -> Response:
    return _token_response(_subject(caller, svc, subject_token), svc, nocatalog, 200)


@router.head(
    "/tokens",
    status_code=200,
    responses={200: {"description": "Token is valid"}, **error_responses(400, 401, 403, 404)},
    summary="Check a token",
)
async def check_token(caller: Caller, svc: IdentityDep, subject_token: SubjectToken) -> Response:
    _subject(caller, svc, subject_token)
    return Response(status_code=200)


@router.delete(
    "/tokens",
    status_code=204,
    responses={204: {"description": "Token revoked"}, **error_responses(400, 401, 403, 404)},
    summary="Revoke a token",
)
def revoke_token(caller: Caller, svc: IdentityDep, subject_token: SubjectToken) -> Response:
    subject = _subject(caller, svc, subject_token)
    svc.store.revoke(subject.issued_at, audit_id=subject.payload.audit_ids[0])
    return Response(status_code=204)


def _links(request: Request) -> dict[str, Any]:
    return {"self": str(request.url), "previous": None, "next": None}


@router.get(
    "/projects",
    response_model=ProjectList,
    responses=error_responses(401),
    summary="Projects the caller can scope to",
)
def my_projects(caller: Caller, svc: IdentityDep, request: Request) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/") + "/identity"
    snapshot = svc.identity.cached()
    projects = [p for p in snapshot.projects_of(caller.user.id) if p.enabled]
    return {"projects": [render.project(p, base) for p in projects], "links": _links(request)}


@router.get(
    "/domains",
    response_model=DomainList,
    responses=error_responses(401),
    summary="Domains the caller can scope to",
)
def my_domains(caller: Caller, svc: IdentityDep, request: Request) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/") + "/identity"
    snapshot = svc.identity.cached()
    domains = [
        d
        for d in snapshot.domains.values()
        if d.enabled and snapshot.effective_roles(caller.user.id, d.id)
    ]
    return {"domains": [render.domain(d, base) for d in domains], "links": _links(request)}


@router.get(
    "/system",
    response_model=SystemList,
    responses=error_responses(401),
    summary="Whether the caller can scope to the system",
)
def my_system(caller: Caller, svc: IdentityDep, request: Request) -> dict[str, Any]:
    held = svc.identity.cached().effective_roles(caller.user.id, SYSTEM_TARGET)
    return {"system": [{"all": True}] if held else [], "links": _links(request)}


@router.get(
    "/catalog",
    response_model=CatalogResponse,
    responses=error_responses(401, 403),
    summary="The service catalog",
)
def my_catalog(caller: Caller, svc: IdentityDep, request: Request) -> dict[str, Any]:
    if caller.project is None and caller.domain is None and not caller.system:
        raise Forbidden("A scoped token is required to read the catalog.")
    return {
        "catalog": render.catalog(
            svc.identity.cached(), caller.project.id if caller.project else None
        ),
        "links": _links(request),
    }


@passwords.post(
    "/{user_id}/password",
    status_code=204,
    summary="Change a user's password, given its original one (its tokens are revoked)",
    responses=error_responses(400, 401, 404),
)
def change_password(
    user_id: Annotated[str, Path(min_length=1, max_length=64)],
    body: PasswordChangeBody,
    _caller: Caller,
    svc: IdentityDep,
) -> Response:
    # Keystone takes this call without a token (the original password is the proof); Cascade
    # asks for a valid token too, as on every route but issuing one.
    user = svc.identity.cached().users.get(user_id)
    if user is None:
        raise NotFound(f"Could not find user: {user_id}.")
    if not verify_password(body.user.original_password, user.password_hash):
        raise Unauthorized("The original password given is not the user's password.")
    svc.store.update(USER, user_id, {"password": body.user.password})
    return Response(status_code=204)
