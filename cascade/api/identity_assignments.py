"""Keystone ``/identity/v3`` role assignments: a user's or a group's roles on a project, a
domain or the system (grant, check, list, revoke), and ``/role_assignments`` with Keystone's
filters, ``include_names`` and ``effective`` (group roles expanded to each member, inherited
ones to each project they reach, implied roles added). The OS-INHERIT routes themselves are
``cascade.api.identity_inherit``.

Writes need ``admin``; reads need an admin or a system reader, except a user reading its own
roles. Imports the identity read model and store, never the database.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from cascade.api.deps import Caller, IdentityDep
from cascade.api.errors import error_responses
from cascade.db.models import SYSTEM_TARGET
from cascade.errors import BadRequest, NotFound
from cascade.identity import inheritance, render, schemas
from cascade.identity.policy import authorize
from cascade.identity.snapshot import IdentitySnapshot
from cascade.identity.tokens import AuthContext

PREFIX = "/identity/v3"
ResourceId = Annotated[str, Path(min_length=1, max_length=255)]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/identity"


def _links(request: Request) -> dict[str, Any]:
    return {"self": str(request.url), "previous": None, "next": None}


def _may_read(caller: AuthContext, actor_type: str, actor_id: str) -> None:
    if not (actor_type == "user" and caller.user.id == actor_id):
        authorize(caller, "reader")


def _assigned(
    snapshot: IdentitySnapshot, actor: tuple[str, str], target_id: str, inherited: bool
) -> set[str]:
    """The roles assigned to ``actor`` (type, id) on a target: directly, or (``inherited``)
    OS-INHERIT's to the projects below it."""
    actor_type, actor_id = actor
    if inherited:
        found = snapshot.inherited
        return {
            a.role_id
            for a in found
            if (a.actor_type, a.actor_id, a.target_id) == (*actor, target_id)
        }
    held = snapshot.group_roles_on if actor_type == "group" else snapshot.roles_on
    return held.get((actor_id, target_id), set())


def _project_or_domain_target(target_id: ResourceId) -> str:
    return target_id


def _system_target() -> str:
    return SYSTEM_TARGET


def _assignment_router(actor_type: str, target_type: str, inherited: bool = False) -> APIRouter:
    """Grant, check, list and revoke the roles of a ``user`` or ``group`` on a ``project``,
    ``domain`` or the ``system``; ``inherited``: OS-INHERIT's, held on every project below
    the domain or project (``.../roles/{role_id}/inherited_to_projects``)."""
    suffix = "/inherited_to_projects" if inherited else ""
    if inherited:
        prefix = f"{PREFIX}/{inherited_path(target_type, '{target_id}', actor_type, '{actor_id}')}"
        target_of: Callable[..., str] = _project_or_domain_target
    elif target_type == "system":
        prefix = f"{PREFIX}/system/{actor_type}s/{{actor_id}}/roles"
        target_of = _system_target
    else:
        prefix = f"{PREFIX}/{target_type}s/{{target_id}}/{actor_type}s/{{actor_id}}/roles"
        target_of = _project_or_domain_target
    target = Annotated[str, Depends(target_of)]
    tag = "identity: inherited role assignments" if inherited else "identity: role assignments"
    router = APIRouter(prefix=prefix, tags=[tag])
    on = "the system" if target_type == "system" else f"a {target_type}"
    if inherited:
        on = f"the projects below {on}"

    @router.get(
        suffix,
        response_model=schemas.RoleList,
        summary=f"Roles of a {actor_type} on {on}",
        responses=error_responses(401, 403, 404),
    )
    def list_roles(
        target_id: target,
        actor_id: ResourceId,
        caller: Caller,
        svc: IdentityDep,
        request: Request,
    ) -> dict[str, Any]:
        _may_read(caller, actor_type, actor_id)
        snapshot = svc.identity.cached()
        role_ids = _assigned(snapshot, (actor_type, actor_id), target_id, inherited)
        base = _base(request)
        roles = [render.role(snapshot.roles[r], base) for r in sorted(role_ids)]
        return {"roles": roles, "links": _links(request)}

    def writer(present: bool) -> Callable[..., Response]:
        def write(
            target_id: target,
            actor_id: ResourceId,
            role_id: ResourceId,
            caller: Caller,
            svc: IdentityDep,
        ) -> Response:
            authorize(caller, "admin")
            actor = (actor_type, actor_id)
            svc.store.set_assignment(actor, target_type, target_id, role_id, present, inherited)
            return Response(status_code=204)

        return write

    written = error_responses(401, 403, 404)
    grant = f"Grant a role to a {actor_type} on {on}"
    revoke = f"Revoke a role of a {actor_type} on {on}"
    one = "/{role_id}" + suffix
    router.put(one, status_code=204, summary=grant, responses=written)(writer(True))
    router.delete(one, status_code=204, summary=revoke, responses=written)(writer(False))

    def check(
        target_id: target,
        actor_id: ResourceId,
        role_id: ResourceId,
        caller: Caller,
        svc: IdentityDep,
    ) -> Response:
        _may_read(caller, actor_type, actor_id)
        held = _assigned(svc.identity.cached(), (actor_type, actor_id), target_id, inherited)
        if role_id not in held:
            raise NotFound(
                f"Could not find role assignment with role: {role_id}, "
                f"{actor_type}: {actor_id}, {target_type}: {target_id}."
            )
        return Response(status_code=204)

    responses = {204: {"description": "Granted"}, **error_responses(401, 403, 404)}
    summary = f"Check a role of a {actor_type} on {on}"
    router.head(one, status_code=204, summary=summary, responses=responses)(check)
    if target_type == "system" or inherited:  # Keystone answers GET there as it does HEAD
        router.get(one, status_code=204, summary=summary, responses=responses)(check)

    return router


# ---- /role_assignments ---------------------------------------------------------------------

listing = APIRouter(prefix=PREFIX, tags=["identity: role assignments"])


class NamedAssignment(BaseModel):
    """A role assignment as Keystone renders it, with names when ``include_names`` asks."""

    role: dict[str, Any]
    user: dict[str, Any] | None = None
    group: dict[str, Any] | None = None
    scope: dict[str, Any]  # a project's or domain's may say ``OS-INHERIT:inherited_to``
    links: dict[str, str]


class NamedAssignmentList(BaseModel):
    role_assignments: list[NamedAssignment]
    links: schemas.Links


def _flag(value: str | None) -> bool:
    """Keystone's query flags: present (``?effective``, ``=true``, ``=1``) unless 0/false."""
    return value is not None and value.lower() not in ("0", "false")


def _named(snapshot: IdentitySnapshot, kind: str, row_id: str) -> dict[str, Any]:
    """``{"id", "name"}`` of a user, group, project, domain or role, and the domain of a
    user, group or project (Keystone's ``include_names`` shape)."""
    tables: dict[str, dict[str, Any]] = {
        "user": snapshot.users,
        "group": snapshot.groups,
        "project": snapshot.projects,
        "domain": snapshot.domains,
        "role": snapshot.roles,
    }
    row = tables[kind].get(row_id)
    ref: dict[str, Any] = {"id": row_id, "name": row.name if row else ""}
    if kind in ("user", "group", "project") and row is not None:
        domain = snapshot.domains.get(row.domain_id)
        ref["domain"] = {"id": row.domain_id, "name": domain.name if domain else ""}
    return ref


@dataclass(frozen=True)
class _Grant:
    actor_type: str  # "user" or "group": who the role was assigned to
    actor_id: str
    target_type: str
    target_id: str
    role_id: str
    user_id: str | None = None  # effective: the member a group's role reaches
    prior_role_id: str | None = None  # effective: the assigned role this one is implied by
    # OS-INHERIT: the (type, id) of the domain or project the role is inherited from
    inherited_from: tuple[str, str] | None = None

    @property
    def holder(self) -> tuple[str, str]:
        """Who holds the role as listed: the member when expanded, else the actor."""
        return ("user", self.user_id) if self.user_id else (self.actor_type, self.actor_id)

    @property
    def listed_inherited(self) -> bool:
        """An inherited assignment as made (not expanded to the projects it reaches)."""
        return self.inherited_from == (self.target_type, self.target_id)


def _inherited(snapshot: IdentitySnapshot, effective: bool) -> list[_Grant]:
    """Every OS-INHERIT assignment; ``effective``: one per project it reaches (and per member
    of a group), as the roles a token scoped there carries."""
    found = []
    children = inheritance.children_of(snapshot.projects.values())
    for a in snapshot.inherited:
        origin = (a.target_type, a.target_id)
        if not effective:
            found.append(
                _Grant(a.actor_type, a.actor_id, *origin, a.role_id, inherited_from=origin)
            )
            continue
        group = a.actor_type == "group"
        users = sorted(snapshot.members_of.get(a.actor_id, ())) if group else [None]
        for project_id in inheritance.reached(children, snapshot.projects, *origin):
            found += [
                _Grant(
                    a.actor_type,
                    a.actor_id,
                    "project",
                    project_id,
                    a.role_id,
                    user_id,
                    None,
                    origin,
                )
                for user_id in users
            ]
    return found


def _grants(snapshot: IdentitySnapshot, effective: bool) -> list[_Grant]:
    """Every assignment; ``effective``: group assignments replaced by one per member,
    inherited ones by one per project they reach, and the roles each assigned role implies
    added (once per holder, target and role), as Keystone expands them."""
    direct = [
        _Grant("user", a.user_id, a.target_type, a.target_id, a.role_id)
        for a in snapshot.assignments
    ]
    for g in snapshot.group_assignments:
        if not effective:
            direct.append(_Grant("group", g.group_id, g.target_type, g.target_id, g.role_id))
            continue
        for user_id in sorted(snapshot.members_of.get(g.group_id, ())):
            direct.append(
                _Grant("group", g.group_id, g.target_type, g.target_id, g.role_id, user_id)
            )
    direct += _inherited(snapshot, effective)
    if not effective:
        return direct
    held = {(g.holder, g.target_id, g.role_id) for g in direct}
    implied: list[_Grant] = []
    for grant in direct:
        for implied_id in snapshot.implied_by(grant.role_id):
            if (grant.holder, grant.target_id, implied_id) in held:
                continue
            held.add((grant.holder, grant.target_id, implied_id))
            implied.append(replace(grant, role_id=implied_id, prior_role_id=grant.role_id))
    # A domain-specific role is never effective itself, only the global roles it implies.
    return [g for g in direct + implied if _global(snapshot, g.role_id)]


def _global(snapshot: IdentitySnapshot, role_id: str) -> bool:
    role = snapshot.roles.get(role_id)
    return role is not None and role.domain_id is None


def inherited_path(target_type: str, target_id: str, actor_type: str, actor_id: str) -> str:
    """The path of an OS-INHERIT assignment's routes, under /identity/v3."""
    return f"OS-INHERIT/{target_type}s/{target_id}/{actor_type}s/{actor_id}/roles"


def _render_grant(
    snapshot: IdentitySnapshot, grant: _Grant, base: str, names: bool
) -> dict[str, Any]:
    assigned = grant.prior_role_id or grant.role_id
    actor = f"{grant.actor_type}s/{grant.actor_id}/roles/{assigned}"
    if grant.inherited_from is not None:
        path = inherited_path(*grant.inherited_from, grant.actor_type, grant.actor_id)
        links = {"assignment": f"{base}/v3/{path}/{assigned}/inherited_to_projects"}
    elif grant.target_type == "system":
        links = {"assignment": f"{base}/v3/system/{actor}"}
    else:
        links = {"assignment": f"{base}/v3/{grant.target_type}s/{grant.target_id}/{actor}"}
    if grant.user_id:
        links["membership"] = f"{base}/v3/groups/{grant.actor_id}/users/{grant.user_id}"
    if grant.prior_role_id:
        links["prior_role"] = f"{base}/v3/roles/{grant.prior_role_id}"
    holder_type, holder_id = grant.holder
    scope: dict[str, Any]
    if grant.target_type == "system":
        scope = {"system": {"all": True}}
    elif names:
        scope = {grant.target_type: _named(snapshot, grant.target_type, grant.target_id)}
    else:
        scope = {grant.target_type: {"id": grant.target_id}}
    if grant.listed_inherited:
        scope["OS-INHERIT:inherited_to"] = "projects"
    if not names:
        return {
            "role": {"id": grant.role_id},
            holder_type: {"id": holder_id},
            "scope": scope,
            "links": links,
        }
    return {
        "role": _named(snapshot, "role", grant.role_id),
        holder_type: _named(snapshot, holder_type, holder_id),
        "scope": scope,
        "links": links,
    }


def _selected(grant: _Grant, wanted: dict[str, str | None], projects: set[str]) -> bool:
    """Whether ``grant`` passes the filters ``wanted``; ``projects``: the ones the project
    filter takes (the project, and with ``include_subtree`` those below it)."""
    holder_type, holder_id = grant.holder
    project, domain = wanted["project"], wanted["domain"]
    checks = (
        (wanted["user"], holder_type == "user" and holder_id == wanted["user"]),
        (wanted["group"], holder_type == "group" and holder_id == wanted["group"]),
        (wanted["role"], grant.role_id == wanted["role"]),
        (wanted["inherited_to"], grant.listed_inherited),
        (project, grant.target_type == "project" and grant.target_id in projects),
        (domain, grant.target_type == "domain" and grant.target_id == domain),
        (wanted["system"], grant.target_type == "system"),
    )
    return all(ok for given, ok in checks if given is not None)


Filter = Annotated[str | None, Query(max_length=64)]


@listing.get(
    "/role_assignments",
    response_model=NamedAssignmentList,
    response_model_exclude_none=True,
    summary="List role assignments (``include_names``: with names; ``effective``: group roles "
    "expanded to members, with the roles assignments imply)",
    responses=error_responses(400, 401, 403),
)
def list_assignments(
    caller: Caller,
    svc: IdentityDep,
    request: Request,
    user_id: Annotated[str | None, Query(alias="user.id", max_length=64)] = None,
    group_id: Annotated[str | None, Query(alias="group.id", max_length=64)] = None,
    project_id: Annotated[str | None, Query(alias="scope.project.id", max_length=64)] = None,
    domain_id: Annotated[str | None, Query(alias="scope.domain.id", max_length=64)] = None,
    system: Annotated[str | None, Query(alias="scope.system", max_length=64)] = None,
    role_id: Annotated[str | None, Query(alias="role.id", max_length=64)] = None,
    inherited_to: Annotated[
        Literal["projects"] | None, Query(alias="scope.OS-INHERIT:inherited_to")
    ] = None,
    include_names: Filter = None,
    include_subtree: Filter = None,
    effective: Filter = None,
) -> dict[str, Any]:
    if user_id is None or user_id != caller.user.id:
        authorize(caller, "reader")
    if _flag(effective) and group_id is not None:
        raise BadRequest(
            "Combining effective and group filter will always result in an empty list."
        )
    if system is not None and system != "all":
        raise BadRequest("scope.system must be 'all'")
    if _flag(include_subtree) and project_id is None:
        raise BadRequest("include_subtree needs scope.project.id")
    snapshot = svc.identity.cached()
    projects = {project_id} if project_id else set()
    if project_id and _flag(include_subtree):
        children = inheritance.children_of(snapshot.projects.values())
        projects.update(inheritance.reached(children, snapshot.projects, "project", project_id))
    base = _base(request)
    wanted = {
        "user": user_id,
        "group": group_id,
        "role": role_id,
        "project": project_id,
        "domain": domain_id,
        "system": system,
        "inherited_to": inherited_to,
    }
    found = [
        _render_grant(snapshot, grant, base, _flag(include_names))
        for grant in _grants(snapshot, _flag(effective))
        if _selected(grant, wanted, projects)
    ]
    return {"role_assignments": found, "links": _links(request)}


@cache
def routers() -> tuple[APIRouter, ...]:
    """The assignment routers, built once per process (every app includes the same ones)."""
    found = [
        _assignment_router(actor, target)
        for actor in ("user", "group")
        for target in ("project", "domain", "system")
    ]
    inherited = [
        _assignment_router(actor, target, inherited=True)
        for actor in ("user", "group")
        for target in ("project", "domain")
    ]
    return (*found, *inherited, listing)
