"""Keystone ``/identity/v3`` resources: domains, projects, users, groups, roles, regions,
services, endpoints, policies and OAuth1 consumers, one CRUD router factory for all ten.
Role assignments are ``cascade.api.identity_assignments``; group membership is
``cascade.api.identity_groups``.

Writes need ``admin``. Reads: the catalog resources (regions, services, endpoints) and roles
are visible to any valid token; a domain, project or user is visible to an admin, a system
reader and the caller it concerns (its own user, its scoped project, its own domain); listing
them needs an admin or a system reader.

No ``from __future__ import annotations`` here: the factory builds route signatures at run time.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field, create_model

from cascade.api.deps import Caller, IdentityDep
from cascade.api.errors import error_responses
from cascade.errors import NotFound
from cascade.identity import render, role_schemas, schemas
from cascade.identity.kinds import (
    CONSUMER,
    DOMAIN,
    ENDPOINT,
    GROUP,
    POLICY,
    PROJECT,
    REGION,
    ROLE,
    SERVICE,
    USER,
    Kind,
)
from cascade.identity.policy import authorize
from cascade.identity.snapshot import IdentitySnapshot
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
    path: str = ""  # under /identity/v3 when not the plural (``OS-OAUTH1/consumers``)

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
        ("name", "domain_id", "enabled", "parent_id", "is_domain"),
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
        GROUP,
        "groups",
        schemas.GroupIn,
        schemas.GroupPatch,
        schemas.GroupOut,
        render.group,
        lambda s: s.groups,
        ("name", "domain_id"),
        lambda _ctx, _row: False,
    ),
    Resource(
        ROLE,
        "roles",
        role_schemas.DomainRoleIn,
        schemas.RolePatch,
        schemas.RoleOut,
        render.role,
        lambda s: s.roles,
        ("name", "domain_id"),
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
    Resource(
        POLICY,
        "policies",
        schemas.PolicyIn,
        schemas.PolicyPatch,
        schemas.PolicyOut,
        render.policy,
        lambda s: s.policies,
        ("type",),
        _anyone,
        public_list=True,
    ),
    Resource(
        CONSUMER,
        "consumers",
        schemas.ConsumerIn,
        schemas.ConsumerPatch,
        schemas.ConsumerOut,
        render.consumer,
        lambda s: s.consumers,
        (),
        lambda _ctx, _row: False,
        path="OS-OAUTH1/consumers",
    ),
)


def base_url(request: Request) -> str:
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


def with_extra(given: BaseModel, current: dict[str, Any] | None) -> dict[str, Any]:
    """The fields of a create body (``current`` None: with defaults) or of an update body
    (only those set); attributes the model does not declare (kept by models that allow
    them) go into ``extra``, over the ``current`` ones."""
    unknown = dict(given.model_extra or {})
    fields = given.model_dump(exclude_unset=current is not None, exclude=set(unknown))
    if unknown:
        fields["extra"] = {**(current or {}), **unknown}
    return fields


def _model(name: str, fields: dict[str, Any]) -> Any:
    """A Pydantic model built at run time (envelopes such as ``{"project": {...}}``)."""
    return create_model(name, **fields)


def _crud_router(res: Resource) -> APIRouter:
    path = res.path or res.plural
    router = APIRouter(prefix=f"{PREFIX}/{path}", tags=[f"identity: {res.plural}"])
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
        responses=error_responses(400, 401, 403, 404, 409),
    )
    def create(
        body: create_body,  # type: ignore[valid-type]
        caller: Caller,
        svc: IdentityDep,
        request: Request,
    ) -> dict[str, Any]:
        authorize(caller, "admin")
        fields = with_extra(getattr(body, res.singular), None)
        if res.kind is REGION and fields.get("id") is None:
            fields["id"] = uuid.uuid4().hex
        row = svc.store.create(res.kind, fields)
        created = res.render(row, base_url(request))
        if res.kind is CONSUMER:  # its secret is shown this once
            created["secret"] = row.secret
        return {res.singular: created}

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
            authorize(caller, "reader")  # an admin or a system reader
        given = query.model_dump().items()  # type: ignore[attr-defined]
        filters = {k: v for k, v in given if v is not None}
        if res.kind is ROLE:  # Keystone lists a domain's roles only when asked for them
            filters.setdefault("domain_id", None)
        if res.kind is PROJECT:  # and projects acting as domains only when asked for them
            filters.setdefault("is_domain", "false")
        rows = [r for r in res.rows(svc.identity.cached()).values() if _matches(r, filters)]
        base = base_url(request)
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
            authorize(caller, "reader")  # an admin or a system reader
        return {res.singular: res.render(row, base_url(request))}

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
        current = res.rows(svc.identity.cached()).get(row_id)
        fields = with_extra(getattr(body, res.singular), getattr(current, "extra", None) or {})
        row = svc.store.update(res.kind, row_id, fields)
        return {res.singular: res.render(row, base_url(request))}

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


@cache
def routers() -> tuple[APIRouter, ...]:
    """The CRUD routers, built once per process (every app includes the same ones)."""
    return tuple(_crud_router(res) for res in RESOURCES)
