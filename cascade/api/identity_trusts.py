"""Keystone ``/identity/v3/OS-TRUST/trusts``: create, list (``trustor_user_id`` or
``trustee_user_id``), show, delete, and a trust's delegated roles (``/roles``, ``/roles/{id}``
GET and HEAD). The rules are ``cascade.identity.trusts``'; a trust is visible to its trustor
and trustee, admins and system readers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from cascade.api.deps import Caller, IdentityDep
from cascade.api.errors import error_responses
from cascade.api.identity_app_credentials import base_url, list_links
from cascade.errors import NotFound
from cascade.identity import trusts
from cascade.identity.delegation_schemas import (
    TrustBody,
    TrustList,
    TrustResponse,
    TrustRoleList,
    TrustRoleResponse,
)
from cascade.identity.delegations import delegations
from cascade.identity.services import IdentityServices
from cascade.identity.tokens import AuthContext

router = APIRouter(prefix="/identity/v3/OS-TRUST/trusts", tags=["identity: trusts"])

TrustId = Annotated[str, Path(min_length=1, max_length=64)]
RoleId = Annotated[str, Path(min_length=1, max_length=64)]
UserFilter = Annotated[str | None, Query(min_length=1, max_length=64)]
READ = error_responses(401, 403, 404)


def _readable(caller: AuthContext, svc: IdentityServices, trust_id: str) -> Any:
    trust = trusts.shown(delegations(svc.db, svc.identity.cached()), trust_id)
    trusts.may_read(caller, trust)
    return trust


@router.post(
    "",
    status_code=201,
    response_model=TrustResponse,
    responses=error_responses(400, 401, 403, 404),
    summary="Create a trust (the caller is its trustor)",
)
def create_trust(
    body: TrustBody, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    row = trusts.create(svc.store, svc.snapshot(), caller, body.trust)
    return {"trust": trusts.trust(row, svc.snapshot(), base_url(request), with_roles=True)}


@router.get(
    "",
    response_model=TrustList,
    response_model_exclude_unset=True,  # a listed trust has no roles (Keystone's)
    responses=READ,
    summary="List trusts",
)
def list_trusts(
    caller: Caller,
    svc: IdentityDep,
    request: Request,
    trustor_user_id: UserFilter = None,
    trustee_user_id: UserFilter = None,
) -> dict[str, Any]:
    trusts.may_list(caller, trustor_user_id, trustee_user_id)
    snapshot = svc.identity.cached()
    rows = sorted(delegations(svc.db, snapshot).trusts.values(), key=lambda t: t.created_at)
    if trustor_user_id is not None:
        rows = [t for t in rows if t.trustor_user_id == trustor_user_id]
    elif trustee_user_id is not None:
        rows = [t for t in rows if t.trustee_user_id == trustee_user_id]
    base = base_url(request)
    return {
        "trusts": [trusts.trust(t, snapshot, base, with_roles=False) for t in rows],
        "links": list_links(request),
    }


@router.get("/{trust_id}", response_model=TrustResponse, responses=READ, summary="A trust")
def show_trust(
    trust_id: TrustId, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    row = _readable(caller, svc, trust_id)
    snapshot = svc.identity.cached()
    return {"trust": trusts.trust(row, snapshot, base_url(request), with_roles=True)}


@router.delete(
    "/{trust_id}",
    status_code=204,
    responses=READ,
    summary="Delete a trust and those redelegated from it (their tokens stop validating)",
)
def delete_trust(trust_id: TrustId, caller: Caller, svc: IdentityDep) -> Response:
    trusts.delete(svc.store, caller, trust_id)
    return Response(status_code=204)


@router.get(
    "/{trust_id}/roles",
    response_model=TrustRoleList,
    responses=READ,
    summary="The roles a trust delegates",
)
def trust_roles(
    trust_id: TrustId, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    row = _readable(caller, svc, trust_id)
    snapshot = svc.identity.cached()
    base = base_url(request)
    roles = [trusts.role(snapshot.roles[r], base) for r in row.roles if r in snapshot.roles]
    return {"roles": roles, "links": list_links(request)}


def _delegated_role(
    trust_id: str, role_id: str, caller: AuthContext, svc: IdentityServices, request: Request
) -> dict[str, Any]:
    row = _readable(caller, svc, trust_id)
    snapshot = svc.identity.cached()
    if role_id not in row.roles or role_id not in snapshot.roles:
        raise NotFound(f"Could not find role: {role_id}.")
    return {"role": trusts.role(snapshot.roles[role_id], base_url(request))}


@router.get(
    "/{trust_id}/roles/{role_id}",
    response_model=TrustRoleResponse,
    responses=READ,
    summary="A role the trust delegates (404 if it does not)",
)
def trust_role(
    trust_id: TrustId, role_id: RoleId, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    return _delegated_role(trust_id, role_id, caller, svc, request)


@router.head(
    "/{trust_id}/roles/{role_id}",
    status_code=200,
    responses={200: {"description": "The trust delegates the role"}, **READ},
    summary="Check that the trust delegates a role",
)
def check_trust_role(
    trust_id: TrustId, role_id: RoleId, caller: Caller, svc: IdentityDep, request: Request
) -> Response:
    _delegated_role(trust_id, role_id, caller, svc, request)
    return Response(status_code=200)
