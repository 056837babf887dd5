"""Keystone ``/identity/v3`` relations between users, groups and projects: group membership
(``/groups/{id}/users/{user_id}`` PUT/HEAD/DELETE), a group's users, a user's groups and a
user's projects (its own roles and its groups').

Membership writes need ``admin``; reads need an admin or a system reader, except a user
reading its own groups and projects. The groups themselves are CRUD resources
(``cascade.api.identity_resources``).
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from cascade.api.deps import Caller, IdentityDep
from cascade.api.errors import error_responses
from cascade.errors import NotFound
from cascade.identity import render, schemas
from cascade.identity.policy import authorize
from cascade.identity.snapshot import IdentitySnapshot

PREFIX = "/identity/v3"
ResourceId = Annotated[str, Path(min_length=1, max_length=255)]

router = APIRouter(prefix=PREFIX, tags=["identity: groups"])
WRITTEN = error_responses(401, 403, 404)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/identity"


def _links(request: Request) -> dict[str, Any]:
    return {"self": str(request.url), "previous": None, "next": None}


def _existing(snapshot: IdentitySnapshot, group_id: str, user_id: str | None = None) -> None:
    if group_id not in snapshot.groups:
        raise NotFound(f"Could not find group: {group_id}.")
    if user_id is not None and user_id not in snapshot.users:
        raise NotFound(f"Could not find user: {user_id}.")


def _membership_writer(present: bool) -> Callable[..., Response]:
    def write(
        group_id: ResourceId, user_id: ResourceId, caller: Caller, svc: IdentityDep
    ) -> Response:
        authorize(caller, "admin")
        svc.store.set_membership(group_id, user_id, present=present)
        return Response(status_code=204)

    return write


MEMBER = "/groups/{group_id}/users/{user_id}"
router.put(MEMBER, status_code=204, summary="Add a user to a group", responses=WRITTEN)(
    _membership_writer(True)
)
router.delete(MEMBER, status_code=204, summary="Remove a user from a group", responses=WRITTEN)(
    _membership_writer(False)
)


@router.head(
    MEMBER,
    status_code=204,
    summary="Check that a user is in a group",
    responses={204: {"description": "A member"}, **error_responses(401, 403, 404)},
)
def check_member(
    group_id: ResourceId, user_id: ResourceId, caller: Caller, svc: IdentityDep
) -> Response:
    if caller.user.id != user_id:
        authorize(caller, "reader")
    snapshot = svc.identity.cached()
    _existing(snapshot, group_id, user_id)
    if user_id not in snapshot.members_of.get(group_id, set()):
        raise NotFound(f"User {user_id} is not a member of group {group_id}.")
    return Response(status_code=204)


@router.get(
    "/groups/{group_id}/users",
    response_model=schemas.UserList,
    summary="The users of a group",
    responses=error_responses(401, 403, 404),
)
def group_users(
    group_id: ResourceId, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    authorize(caller, "reader")
    snapshot = svc.identity.cached()
    _existing(snapshot, group_id)
    base = _base(request)
    ids = sorted(snapshot.members_of.get(group_id, set()))
    users = [render.user(snapshot.users[i], base) for i in ids if i in snapshot.users]
    return {"users": users, "links": _links(request)}


@router.get(
    "/users/{user_id}/groups",
    response_model=schemas.GroupList,
    summary="The groups a user is in",
    responses=error_responses(401, 403, 404),
)
def user_groups(
    user_id: ResourceId, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    if caller.user.id != user_id:
        authorize(caller, "reader")
    snapshot = svc.identity.cached()
    if user_id not in snapshot.users:
        raise NotFound(f"Could not find user: {user_id}.")
    base = _base(request)
    ids = sorted(snapshot.groups_of.get(user_id, set()))
    groups = [render.group(snapshot.groups[i], base) for i in ids if i in snapshot.groups]
    return {"groups": groups, "links": _links(request)}


@router.get(
    "/users/{user_id}/projects",
    response_model=schemas.ProjectList,
    summary="Projects a user has a role on (its own or its groups')",
    responses=error_responses(401, 403),
)
def user_projects(
    user_id: ResourceId, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    if caller.user.id != user_id:
        authorize(caller, "reader")
    base = _base(request)
    projects = svc.identity.cached().projects_of(user_id)
    return {"projects": [render.project(p, base) for p in projects], "links": _links(request)}
