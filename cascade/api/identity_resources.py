"""Keystone ``/identity/v3`` resources: domains, projects, users, roles, regions, services,
endpoints (one CRUD router factory for all seven) and role assignments (Keystone's filters,
``include_names`` and ``effective``).

Writes need ``admin``. Reads: the catalog resources (regions, services, endpoints) and roles
are visible to any valid token; a domain, project or user is visible to an admin and to the
caller it concerns (its own user, its scoped project, its own domain); listing them needs admin.

No ``from __future__ import annotations`` here: the factory builds route signatures at run time.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field, create_model

from cascade.api.deps import Caller, IdentityDep
from cascade.api.errors import error_responses
from cascade.errors import NotFound
from cascade.identity import render, schemas
from cascade.identity.policy import authorize
from cascade.identity.snapshot import IMPLIED_ROLES, IdentitySnapshot
from cascade.identity.store import (
    DOMAIN,
    ENDPOINT,
    PROJECT,
    REGION,
    ROLE,
    SERVICE,
    USER,
    Kind,
)
from cascade.identity.tokens import AuthContext

PREFIX = "/identity/v3"
ResourceId = Annotated[str, Path(min_length=1, max_length=255)]


def _anyone(_ctx: AuthContext, _row: Any) -> bool:
    return True


def _own_domain(ctx: AuthContext, row: Any) -> bool:
    return row.id in {ctx.user.domain_id, ctx.project.domain_id if ctx.project else None}


def _own_project(ctx: AuthContext, row: Any) -> bool:
    return ctx.project is not None and ctx.project.id == row.id


def _own_user(ctx: AuthContext, row: Any) -> bool:
    return bool(ctx.user.id == row.id)


@dataclass(frozen=True)
class Resource:
    kind: Kind
    plural: str
    create: type[BaseModel]
    patch: type[BaseModel]
    out: type[BaseModel]
    render: Callable[[Any, str], dict[str, Any]]
    rows: Callable[[IdentitySnapshot], dict[str, Any]]
    filters: tuple[str, ...]
    may_read: Callable[[AuthContext, Any], bool]
    public_list: bool = False

    @property
    def singular(self) -> str:
        return self.kind.name


RESOURCES = (
    Resource(
        DOMAIN,
        "domains",
        schemas.DomainIn,
        schemas.DomainPatch,
        schemas.DomainOut,
        render.domain,
        lambda s: s.domains,
        ("name", "enabled"),
        _own_domain,
    ),
    Resource(
        PROJECT,
        "projects",
        schemas.ProjectIn,
        schemas.ProjectPatch,
        schemas.ProjectOut,
        render.project,
        lambda s: s.projects,
        ("name", "domain_id", "enabled"),
        _own_project,
    ),
    Resource(
        USER,
        "users",
        schemas.UserIn,
        schemas.UserPatch,
        schemas.UserOut,
        render.user,
        lambda s: s.users,
        ("name", "domain_id", "enabled"),
        _own_user,
    ),
    Resource(
        ROLE,
        "roles",
        schemas.RoleIn,
        schemas.RolePatch,
        schemas.RoleOut,
        render.role,
        lambda s: s.roles,
        ("name",),
        _anyone,
        public_list=True,
    ),
    Resource(
        REGION,
        "regions",
        schemas.RegionIn,
        schemas.RegionPatch,
        schemas.RegionOut,
        render.region,
        lambda s: s.regions,
        ("parent_region_id",),
        _anyone,
        public_list=True,
    ),
    Resource(
        SERVICE,
        "services",
        schemas.ServiceIn,
        schemas.ServicePatch,
        schemas.ServiceOut,
        render.service,
        lambda s: s.services,
        ("type", "name"),
        _anyone,
        public_list=True,
    ),
    Resource(
        ENDPOINT,
        "endpoints",
        schemas.EndpointIn,
        schemas.EndpointPatch,
        schemas.EndpointOut,
        render.endpoint,
        lambda s: s.endpoints,
        ("interface", "service_id", "region_id"),
        _anyone,
        public_list=True,
    ),
)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/identity"


def _links(request: Request) -> dict[str, Any]:
    return {"self": str(request.url), "previous": None, "next": None}


def _matches(row: Any, filters: dict[str, Any]) -> bool:
    for name, wanted in filters.items():
        value = getattr(row, name)
        if isinstance(value, bool):
            value = "true" if value else "false"
            wanted = str(wanted).lower()
        if value != wanted:
            return False
    return True


def _model(name: str, fields: dict[str, Any]) -> Any:
    """A Pydantic model built at run time (envelopes such as ``{"project": {...}}``)."""
    return create_model(name, **fields)


def _crud_router(res: Resource) -> APIRouter:
    router = APIRouter(prefix=f"{PREFIX}/{res.plural}", tags=[f"identity: {res.plural}"])
    one = _model(f"{res.out.__name__}Envelope", {res.singular: (res.out, ...)})
    many = _model(
        f"{res.out.__name__}List",
        {res.plural: (list[res.out], ...), "links": (schemas.Links, ...)},  # type: ignore[name-defined]
    )
    create_body = _model(f"{res.create.__name__}Body", {res.singular: (res.create, ...)})
    patch_body = _model(f"{res.patch.__name__}Body", {res.singular: (res.patch, ...)})
    filter_model = _model(
        f"{res.out.__name__}Filter",
        {name: (str | None, Field(None, min_length=1, max_length=255)) for name in res.filters},
    )

    def _row(svc: Any, row_id: str) -> Any:
        row = res.rows(svc.identity.cached()).get(row_id)
        if row is None:
            raise NotFound(f"Could not find {res.singular}: {row_id}.")
        return row

    @router.post(
        "",
        status_code=201,
        response_model=one,
        summary=f"Create a {res.singular}",
        responses=error_responses(400, 401, 403, 409),
    )
    def create(
        body: create_body,  # type: ignore[valid-type]
        caller: Caller,
        svc: IdentityDep,
        request: Request,
    ) -> dict[str, Any]:
        authorize(caller, "admin")
        fields = getattr(body, res.singular).model_dump()
        if res.kind is REGION and fields.get("id") is None:
            fields["id"] = uuid.uuid4().hex
        row = svc.store.create(res.kind, fields)
        return {res.singular: res.render(row, _base(request))}

    @router.get(
        "",
        response_model=many,
        summary=f"List {res.plural}",
        responses=error_responses(400, 401, 403),
    )
    def list_all(
        caller: Caller,
        svc: IdentityDep,
        request: Request,
        query: Annotated[filter_model, Query()],  # type: ignore[valid-type]
    ) -> dict[str, Any]:
        if not res.public_list:
            authorize(caller, "admin")
        given = query.model_dump().items()  # type: ignore[attr-defined]
        filters = {k: v for k, v in given if v is not None}
        rows = [r for r in res.rows(svc.identity.cached()).values() if _matches(r, filters)]
        base = _base(request)
        return {res.plural: [res.render(r, base) for r in rows], "links": _links(request)}

    @router.get(
        "/{row_id}",
        response_model=one,
        summary=f"Show a {res.singular}",
        responses=error_responses(401, 403, 404),
    )
    def show(
        row_id: ResourceId, caller: Caller, svc: IdentityDep, request: Request
    ) -> dict[str, Any]:
        row = _row(svc, row_id)
        if not res.may_read(caller, row):
            authorize(caller, "admin")
        return {res.singular: res.render(row, _base(request))}

    @router.patch(
        "/{row_id}",
        response_model=one,
        summary=f"Update a {res.singular}",
        responses=error_responses(400, 401, 403, 404, 409),
    )
    def update(
        row_id: ResourceId,
        body: patch_body,  # type: ignore[valid-type]
        caller: Caller,
        svc: IdentityDep,
        request: Request,
    ) -> dict[str, Any]:
        authorize(caller, "admin")
        fields = getattr(body, res.singular).model_dump(exclude_unset=True)
        row = svc.store.update(res.kind, row_id, fields)
        return {res.singular: res.render(row, _base(request))}

    @router.delete(
        "/{row_id}",
        status_code=204,
        summary=f"Delete a {res.singular}",
        responses=error_responses(401, 403, 404, 409),
    )
    def remove(row_id: ResourceId, caller: Caller, svc: IdentityDep) -> Response:
        authorize(caller, "admin")
        svc.store.delete(res.kind, row_id)
        return Response(status_code=204)

    return router


def _assignment_router(target_type: str) -> APIRouter:
    plural = f"{target_type}s"
    router = APIRouter(
        prefix=f"{PREFIX}/{plural}/{{target_id}}/users/{{user_id}}/roles",
        tags=["identity: role assignments"],
    )

    @router.get(
        "",
        response_model=schemas.RoleList,
        summary=f"Roles of a user on a {target_type}",
        responses=error_responses(401, 403, 404),
    )
    def list_roles(
        target_id: ResourceId,
        user_id: ResourceId,
        caller: Caller,
        svc: IdentityDep,
        request: Request,
    ) -> dict[str, Any]:
        if caller.user.id != user_id:
            authorize(caller, "admin")
        snapshot = svc.identity.cached()
        role_ids = snapshot.roles_on.get((user_id, target_id), set())
        roles = [render.role(snapshot.roles[r], _base(request)) for r in sorted(role_ids)]
        return {"roles": roles, "links": _links(request)}

    @router.put(
        "/{role_id}",
        status_code=204,
        summary=f"Grant a role on a {target_type}",
        responses=error_responses(401, 403, 404),
    )
    def grant(
        target_id: ResourceId,
        user_id: ResourceId,
        role_id: ResourceId,
        caller: Caller,
        svc: IdentityDep,
    ) -> Response:
        authorize(caller, "admin")
        svc.store.set_assignment(user_id, target_type, target_id, role_id, present=True)
        return Response(status_code=204)

    @router.head(
        "/{role_id}",
        status_code=204,
        summary=f"Check a role on a {target_type}",
        responses={204: {"description": "Granted"}, **error_responses(401, 403, 404)},
    )
    def check(
        target_id: ResourceId,
        user_id: ResourceId,
        role_id: ResourceId,
        caller: Caller,
        svc: IdentityDep,
    ) -> Response:
        if caller.user.id != user_id:
            authorize(caller, "admin")
        if role_id not in svc.identity.cached().roles_on.get((user_id, target_id), set()):
            raise NotFound(f"Could not find role assignment with role: {role_id}.")
        return Response(status_code=204)

    @router.delete(
        "/{role_id}",
        status_code=204,
        summary=f"Revoke a role on a {target_type}",
        responses=error_responses(401, 403, 404),
    )
    def revoke(
        target_id: ResourceId,
        user_id: ResourceId,
        role_id: ResourceId,
        caller: Caller,
        svc: IdentityDep,
    ) -> Response:
        authorize(caller, "admin")
        svc.store.set_assignment(user_id, target_type, target_id, role_id, present=False)
        return Response(status_code=204)

    return router


extras = APIRouter(prefix=PREFIX, tags=["identity: role assignments"])


class NamedAssignment(BaseModel):
    """A role assignment as Keystone renders it, with names when ``include_names`` asks."""

    role: dict[str, Any]
    user: dict[str, Any]
    scope: dict[str, dict[str, Any]]
    links: dict[str, str]


class NamedAssignmentList(BaseModel):
    role_assignments: list[NamedAssignment]
    links: schemas.Links


def _flag(value: str | None) -> bool:
    """Keystone's query flags: present (``?effective``, ``=true``, ``=1``) unless 0/false."""
    return value is not None and value.lower() not in ("0", "false")


def _domain_ref(snapshot: IdentitySnapshot, domain_id: str) -> dict[str, str]:
    found = snapshot.domains.get(domain_id)
    return {"id": domain_id, "name": found.name if found else ""}


def _named(snapshot: IdentitySnapshot, kind: str, row_id: str) -> dict[str, Any]:
    """``{"id", "name"}`` of a user, project, domain or role, and the domain of a user or
    project (Keystone's ``include_names`` shape)."""
    tables: dict[str, dict[str, Any]] = {
        "user": snapshot.users,
        "project": snapshot.projects,
        "domain": snapshot.domains,
        "role": snapshot.roles,
    }
    row = tables[kind].get(row_id)
    ref: dict[str, Any] = {"id": row_id, "name": row.name if row else ""}
    if kind in ("user", "project") and row is not None:
        ref["domain"] = _domain_ref(snapshot, row.domain_id)
    return ref


@dataclass(frozen=True)
class _Grant:
    user_id: str
    target_type: str
    target_id: str
    role_id: str
    prior_role_id: str | None = None  # the assigned role this one is implied by (effective)


def _grants(snapshot: IdentitySnapshot, effective: bool) -> list[_Grant]:
    """Every assignment; ``effective``: with the roles each assigned role implies (once per
    user, target and role), as Keystone expands them."""
    direct = [
        _Grant(a.user_id, a.target_type, a.target_id, a.role_id) for a in snapshot.assignments
    ]
    if not effective:
        return direct
    held = {(g.user_id, g.target_id, g.role_id) for g in direct}
    implied: list[_Grant] = []
    for grant in direct:
        prior = snapshot.roles.get(grant.role_id)
        for name in IMPLIED_ROLES.get(prior.name if prior else "", ()):
            role = snapshot.role_by_name(name)
            if role is None or (grant.user_id, grant.target_id, role.id) in held:
                continue
            held.add((grant.user_id, grant.target_id, role.id))
            implied.append(
                _Grant(grant.user_id, grant.target_type, grant.target_id, role.id, grant.role_id)
            )
    return direct + implied


def _render_grant(
    snapshot: IdentitySnapshot, grant: _Grant, base: str, names: bool
) -> dict[str, Any]:
    assigned = grant.prior_role_id or grant.role_id
    links = {
        "assignment": f"{base}/v3/{grant.target_type}s/{grant.target_id}/users/"
        f"{grant.user_id}/roles/{assigned}"
    }
    if grant.prior_role_id:
        links["prior_role"] = f"{base}/v3/roles/{grant.prior_role_id}"
    if not names:
        return {
            "role": {"id": grant.role_id},
            "user": {"id": grant.user_id},
            "scope": {grant.target_type: {"id": grant.target_id}},
            "links": links,
        }
    return {
        "role": _named(snapshot, "role", grant.role_id),
        "user": _named(snapshot, "user", grant.user_id),
        "scope": {grant.target_type: _named(snapshot, grant.target_type, grant.target_id)},
        "links": links,
    }


AssignmentFilter = Annotated[str | None, Query(max_length=64)]


@extras.get(
    "/role_assignments",
    response_model=NamedAssignmentList,
    summary="List role assignments (``include_names``: with names; ``effective``: with the "
    "roles assignments imply)",
    responses=error_responses(400, 401, 403),
)
def list_assignments(
    caller: Caller,
    svc: IdentityDep,
    request: Request,
    user_id: Annotated[str | None, Query(alias="user.id", max_length=64)] = None,
    project_id: Annotated[str | None, Query(alias="scope.project.id", max_length=64)] = None,
    domain_id: Annotated[str | None, Query(alias="scope.domain.id", max_length=64)] = None,
    role_id: Annotated[str | None, Query(alias="role.id", max_length=64)] = None,
    include_names: AssignmentFilter = None,
    effective: AssignmentFilter = None,
) -> dict[str, Any]:
    if user_id is None or user_id != caller.user.id:
        authorize(caller, "admin")
    snapshot = svc.identity.cached()
    base = _base(request)
    wanted = {"project": project_id, "domain": domain_id}
    found = [
        _render_grant(snapshot, grant, base, _flag(include_names))
        for grant in _grants(snapshot, _flag(effective))
        if user_id in (None, grant.user_id)
        and role_id in (None, grant.role_id)
        and all(
            target in (None, grant.target_id) and (target is None or kind == grant.target_type)
            for kind, target in wanted.items()
        )
    ]
    return {"role_assignments": found, "links": _links(request)}


@extras.get(
    "/users/{user_id}/projects",
    response_model=schemas.ProjectList,
    summary="Projects a user has a role on",
    responses=error_responses(401, 403),
)
def user_projects(
    user_id: ResourceId, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    if caller.user.id != user_id:
        authorize(caller, "admin")
    base = _base(request)
    projects = svc.identity.cached().projects_of(user_id)
    return {"projects": [render.project(p, base) for p in projects], "links": _links(request)}


def routers() -> list[APIRouter]:
    found = [_crud_router(res) for res in RESOURCES]
    found += [_assignment_router("project"), _assignment_router("domain"), extras]
    return found
