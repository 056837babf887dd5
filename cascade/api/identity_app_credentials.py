"""Keystone ``/identity/v3/users/{user_id}/application_credentials`` (create, list by
``name``, show, delete) and ``/identity/v3/users/{user_id}/access_rules`` (list by
``service``, ``path``, ``method``; show; delete). The rules of who may are
``cascade.identity.app_credentials``'; a user's credentials are visible to it, an admin and a
system reader only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from cascade.api.deps import Caller, IdentityDep
from cascade.api.errors import error_responses
from cascade.errors import NotFound
from cascade.identity import app_credentials
from cascade.identity.delegation_schemas import (
    AccessMethod,
    AccessRuleList,
    AccessRuleResponse,
    AppCredBody,
    AppCredCreatedResponse,
    AppCredList,
    AppCredResponse,
)
from cascade.identity.delegations import delegations

PREFIX = "/identity/v3/users/{user_id}"
router = APIRouter(prefix=PREFIX, tags=["identity: application credentials"])

UserId = Annotated[str, Path(min_length=1, max_length=64)]
ItemId = Annotated[str, Path(min_length=1, max_length=64)]
Filter = Annotated[str | None, Query(min_length=1, max_length=255)]
READ = error_responses(401, 403, 404)


def base_url(request: Request) -> str:
    """Where Keystone's self links point: this app's ``/identity``."""
    return str(request.base_url).rstrip("/") + "/identity"


def list_links(request: Request) -> dict[str, Any]:
    return {"self": str(request.url), "previous": None, "next": None}


@router.post(
    "/application_credentials",
    status_code=201,
    response_model=AppCredCreatedResponse,
    responses=error_responses(400, 401, 403, 404, 409),
    summary="Create an application credential (its secret is shown only here)",
)
def create_app_credential(
    user_id: UserId, body: AppCredBody, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    snapshot = svc.snapshot()
    row, secret = app_credentials.create(
        svc.store,
        snapshot,
        caller,
        user_id,
        body.application_credential,
        svc.settings.password_hash_rounds,
    )
    snapshot = svc.snapshot()
    shown = app_credentials.app_credential(
        row, snapshot, delegations(svc.db, snapshot), base_url(request)
    )
    return {"application_credential": {**shown, "secret": secret}}


@router.get(
    "/application_credentials",
    response_model=AppCredList,
    responses=READ,
    summary="A user's application credentials",
)
def list_app_credentials(
    user_id: UserId, caller: Caller, svc: IdentityDep, request: Request, name: Filter = None
) -> dict[str, Any]:
    app_credentials.may_read(caller, user_id)
    snapshot = svc.identity.cached()
    found = delegations(svc.db, snapshot)
    rows = [c for c in found.app_creds_of(user_id) if name is None or c.name == name]
    base = base_url(request)
    return {
        "application_credentials": [
            app_credentials.app_credential(c, snapshot, found, base) for c in rows
        ],
        "links": list_links(request),
    }


@router.get(
    "/application_credentials/{app_cred_id}",
    response_model=AppCredResponse,
    responses=READ,
    summary="An application credential (without its secret)",
)
def show_app_credential(
    user_id: UserId, app_cred_id: ItemId, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    app_credentials.may_read(caller, user_id)
    snapshot = svc.identity.cached()
    found = delegations(svc.db, snapshot)
    row = app_credentials.owned(found, user_id, app_cred_id)
    return {
        "application_credential": app_credentials.app_credential(
            row, snapshot, found, base_url(request)
        )
    }


@router.delete(
    "/application_credentials/{app_cred_id}",
    status_code=204,
    responses=READ,
    summary="Delete an application credential (its tokens stop validating)",
)
def delete_app_credential(
    user_id: UserId, app_cred_id: ItemId, caller: Caller, svc: IdentityDep
) -> Response:
    app_credentials.may_delete(caller, user_id)
    app_credentials.delete(svc.store, user_id, app_cred_id)
    return Response(status_code=204)


@router.get(
    "/access_rules",
    response_model=AccessRuleList,
    responses=READ,
    summary="A user's access rules",
)
def list_access_rules(
    user_id: UserId,
    caller: Caller,
    svc: IdentityDep,
    request: Request,
    service: Filter = None,
    path: Filter = None,
    method: Annotated[AccessMethod | None, Query()] = None,
) -> dict[str, Any]:
    app_credentials.may_read(caller, user_id)
    found = delegations(svc.db, svc.identity.cached())
    wanted = {"service": service, "path": path, "method": method}
    rules = [
        r
        for r in found.access_rules_of(user_id)
        if all(value is None or getattr(r, key) == value for key, value in wanted.items())
    ]
    base = base_url(request)
    return {
        "access_rules": [app_credentials.access_rule(r, base) for r in rules],
        "links": list_links(request),
    }


@router.get(
    "/access_rules/{rule_id}",
    response_model=AccessRuleResponse,
    responses=READ,
    summary="An access rule",
)
def show_access_rule(
    user_id: UserId, rule_id: ItemId, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    app_credentials.may_read(caller, user_id)
    rule = delegations(svc.db, svc.identity.cached()).access_rules.get(rule_id)
    if rule is None or rule.user_id != user_id:
        raise NotFound(f"Could not find access rule: {rule_id}.")
    return {"access_rule": app_credentials.access_rule(rule, base_url(request))}


@router.delete(
    "/access_rules/{rule_id}",
    status_code=204,
    responses=READ,
    summary="Delete an access rule no application credential uses",
)
def delete_access_rule(
    user_id: UserId, rule_id: ItemId, caller: Caller, svc: IdentityDep
) -> Response:
    app_credentials.may_delete(caller, user_id)
    app_credentials.delete_access_rule(svc.store, user_id, rule_id)
    return Response(status_code=204)
