"""Keystone ``/identity/v3`` implied roles: ``/roles/{prior}/implies[/{implied}]`` (make,
show, check, list, remove) and ``/role_inferences`` (every rule). A token carries the roles
its assigned roles imply, transitively (``IdentitySnapshot.implied_by``).

Writes need ``admin``; reads need an admin or a system reader.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from cascade.api.deps import Caller, IdentityDep
from cascade.api.errors import error_responses
from cascade.api.identity_resources import PREFIX, base_url
from cascade.errors import NotFound
from cascade.identity.policy import authorize
from cascade.identity.snapshot import IdentitySnapshot

RoleId = Annotated[str, Path(min_length=1, max_length=64)]
IMPLIES = "/roles/{prior_role_id}/implies"
RULE = IMPLIES + "/{implied_role_id}"

router = APIRouter(prefix=PREFIX, tags=["identity: implied roles"])


def _ref(snapshot: IdentitySnapshot, role_id: str, base: str) -> dict[str, Any]:
    role = snapshot.roles.get(role_id)
    if role is None:
        raise NotFound(f"Could not find role: {role_id}.")
    return {"id": role.id, "name": role.name, "links": {"self": f"{base}/v3/roles/{role.id}"}}


def _rule(snapshot: IdentitySnapshot, prior: str, implied: str, base: str) -> dict[str, Any]:
    if implied not in snapshot.implies.get(prior, set()):
        raise NotFound(f"{prior} does not imply {implied}.")
    return {"prior_role": _ref(snapshot, prior, base), "implies": _ref(snapshot, implied, base)}


def _rules_of(snapshot: IdentitySnapshot, prior: str, base: str) -> dict[str, Any]:
    implied = sorted(snapshot.implies.get(prior, set()))
    return {
        "prior_role": _ref(snapshot, prior, base),
        "implies": [_ref(snapshot, role_id, base) for role_id in implied],
    }


def _self(request: Request) -> dict[str, str]:
    return {"self": str(request.url)}


@router.put(
    RULE,
    status_code=201,
    summary="Make a role imply another",
    responses=error_responses(401, 403, 404),
)
def create_rule(
    prior_role_id: RoleId,
    implied_role_id: RoleId,
    caller: Caller,
    svc: IdentityDep,
    request: Request,
) -> dict[str, Any]:
    authorize(caller, "admin")
    svc.store.set_inference(prior_role_id, implied_role_id, present=True)
    snapshot = svc.identity.current()
    rule = _rule(snapshot, prior_role_id, implied_role_id, base_url(request))
    return {"role_inference": rule, "links": _self(request)}


@router.get(
    RULE, summary="Show that a role implies another", responses=error_responses(401, 403, 404)
)
def show_rule(
    prior_role_id: RoleId,
    implied_role_id: RoleId,
    caller: Caller,
    svc: IdentityDep,
    request: Request,
) -> dict[str, Any]:
    authorize(caller, "reader")
    snapshot = svc.identity.cached()
    rule = _rule(snapshot, prior_role_id, implied_role_id, base_url(request))
    return {"role_inference": rule, "links": _self(request)}


@router.head(
    RULE,
    status_code=204,
    summary="Check that a role implies another",
    responses={204: {"description": "It does"}, **error_responses(401, 403, 404)},
)
def check_rule(
    prior_role_id: RoleId, implied_role_id: RoleId, caller: Caller, svc: IdentityDep
) -> Response:
    authorize(caller, "reader")
    if implied_role_id not in svc.identity.cached().implies.get(prior_role_id, set()):
        raise NotFound(f"{prior_role_id} does not imply {implied_role_id}.")
    return Response(status_code=204)


@router.delete(
    RULE,
    status_code=204,
    summary="Stop a role implying another",
    responses=error_responses(401, 403, 404),
)
def delete_rule(
    prior_role_id: RoleId, implied_role_id: RoleId, caller: Caller, svc: IdentityDep
) -> Response:
    authorize(caller, "admin")
    svc.store.set_inference(prior_role_id, implied_role_id, present=False)
    return Response(status_code=204)


@router.get(IMPLIES, summary="The roles a role implies", responses=error_responses(401, 403, 404))
def list_rules(
    prior_role_id: RoleId, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    authorize(caller, "reader")
    rules = _rules_of(svc.identity.cached(), prior_role_id, base_url(request))
    return {"role_inference": rules, "links": _self(request)}


@router.get(
    "/role_inferences", summary="Every implied-role rule", responses=error_responses(401, 403)
)
def list_all_rules(caller: Caller, svc: IdentityDep, request: Request) -> dict[str, Any]:
    authorize(caller, "reader")
    snapshot = svc.identity.cached()
    base = base_url(request)
    priors = sorted(prior for prior, implied in snapshot.implies.items() if implied)
    rules = [_rules_of(snapshot, prior, base) for prior in priors if prior in snapshot.roles]
    return {"role_inferences": rules, "links": _self(request)}
