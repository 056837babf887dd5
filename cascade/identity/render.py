"""Keystone JSON for tokens, catalogs and identity resources."""

from __future__ import annotations

from typing import Any

from cascade.db.models import (
    Domain,
    Endpoint,
    Group,
    OAuthConsumer,
    Policy,
    Project,
    Region,
    Role,
    Service,
    User,
)
from cascade.identity.snapshot import IdentitySnapshot
from cascade.identity.token_format import format_time
from cascade.identity.tokens import AuthContext

PROJECT_PLACEHOLDERS = ("$(project_id)s", "$(tenant_id)s")


def catalog(snapshot: IdentitySnapshot, project_id: str | None = None) -> list[dict[str, Any]]:
    """Every enabled service with its enabled endpoints; a registered site is a region here.
    Endpoint URLs have ``$(project_id)s`` replaced as Keystone does (for Swift accounts).
    Rendered once per snapshot and project."""
    key = ("catalog", project_id)
    if key not in snapshot.memo:
        rendered = _render_catalog(snapshot)
        if project_id is not None:
            for entry in rendered:
                for endpoint in entry["endpoints"]:
                    endpoint["url"] = _substitute(endpoint["url"], project_id)
        snapshot.memo[key] = rendered
    found: list[dict[str, Any]] = snapshot.memo[key]
    return found


def _substitute(url: str, project_id: str) -> str:
    for placeholder in PROJECT_PLACEHOLDERS:
        url = url.replace(placeholder, project_id)
    return url


def _render_catalog(snapshot: IdentitySnapshot) -> list[dict[str, Any]]:
    entries = []
    for service in sorted(snapshot.services.values(), key=lambda s: (s.type, s.id)):
        if not service.enabled:
            continue
        endpoints = [
            {
                "id": e.id,
                "interface": e.interface,
                "region": e.region_id,
                "region_id": e.region_id,
                "url": e.url,
            }
            for e in sorted(snapshot.endpoints.values(), key=lambda e: (e.region_id or "", e.id))
            if e.service_id == service.id and e.enabled
        ]
        entries.append(
            {"id": service.id, "type": service.type, "name": service.name, "endpoints": endpoints}
        )
    return entries


def token_body(ctx: AuthContext, snapshot: IdentitySnapshot, with_catalog: bool) -> dict[str, Any]:
    payload = ctx.payload
    body: dict[str, Any] = {
        "methods": list(payload.methods),
        "user": {
            "id": ctx.user.id,
            "name": ctx.user.name,
            "domain": {"id": ctx.user_domain.id, "name": ctx.user_domain.name},
            "password_expires_at": None,
        },
        "audit_ids": list(payload.audit_ids),
        "expires_at": format_time(payload.expires_at),
        "issued_at": format_time(ctx.issued_at),
    }
    if ctx.project is not None:
        project_domain = snapshot.domains[ctx.project.domain_id]
        body["project"] = {
            "id": ctx.project.id,
            "name": ctx.project.name,
            "domain": {"id": project_domain.id, "name": project_domain.name},
        }
        body["is_domain"] = False
    if ctx.domain is not None:
        body["domain"] = {"id": ctx.domain.id, "name": ctx.domain.name}
    if ctx.system:
        body["system"] = {"all": True}
    if ctx.project is not None or ctx.domain is not None or ctx.system:
        body["roles"] = [{"id": role.id, "name": role.name} for role in ctx.roles]
        if with_catalog:
            body["catalog"] = catalog(snapshot, ctx.project.id if ctx.project else None)
    return {"token": body}


def _resource(
    row: Any, base: str, collection: str, columns: tuple[str, ...], **derived: Any
) -> dict[str, Any]:
    """A Keystone resource body: the row's columns, derived fields and the self link."""
    body = {name: getattr(row, name) for name in columns}
    body.update(derived)
    body["links"] = {"self": f"{base}/v3/{collection}/{row.id}"}
    return body


def domain(row: Domain, base: str) -> dict[str, Any]:
    return _resource(row, base, "domains", ("id", "name", "description", "enabled"))


def project(row: Project, base: str) -> dict[str, Any]:
    columns = ("id", "name", "domain_id", "description", "enabled")
    tags = list(row.tags or [])
    body = _resource(
        row,
        base,
        "projects",
        columns,
        parent_id=row.parent_id or row.domain_id,
        is_domain=row.is_domain,
        tags=tags,
    )
    return {**(row.extra or {}), **body}


def user(row: User, base: str) -> dict[str, Any]:
    columns = ("id", "name", "domain_id", "enabled", "default_project_id", "description")
    body = _resource(row, base, "users", columns, password_expires_at=None)
    return {**(row.extra or {}), **body}


def group(row: Group, base: str) -> dict[str, Any]:
    return _resource(row, base, "groups", ("id", "name", "domain_id", "description"))


def role(row: Role, base: str) -> dict[str, Any]:
    return _resource(row, base, "roles", ("id", "name", "description", "domain_id"))


def region(row: Region, base: str) -> dict[str, Any]:
    return _resource(row, base, "regions", ("id", "description", "parent_region_id"))


def service(row: Service, base: str) -> dict[str, Any]:
    return _resource(row, base, "services", ("id", "type", "name", "description", "enabled"))


def endpoint(row: Endpoint, base: str) -> dict[str, Any]:
    columns = ("id", "service_id", "interface", "url", "region_id", "enabled")
    return _resource(row, base, "endpoints", columns, region=row.region_id)


def policy(row: Policy, base: str) -> dict[str, Any]:
    body = _resource(row, base, "policies", ("id", "type", "blob"))
    return {**(row.extra or {}), **body}


def consumer(row: OAuthConsumer, base: str) -> dict[str, Any]:
    """Without its secret, which only the answer to its creation shows."""
    return _resource(row, base, "OS-OAUTH1/consumers", ("id", "description"))


def password_auth(
    user: str, password: str, project: str | None = None, domain: str = "default"
) -> dict[str, Any]:
    """A Keystone ``POST /auth/tokens`` body: password method, optionally project-scoped."""
    auth: dict[str, Any] = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": user, "domain": {"id": domain}, "password": password}},
        }
    }
    if project is not None:
        auth["scope"] = {"project": {"name": project, "domain": {"id": domain}}}
    return {"auth": auth}
