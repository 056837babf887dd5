"""Bootstrap: the default domain, the admin/member/reader roles (admin implying member,
member implying reader), an admin user and project (admin on the project and on the system),
and Cascade's own identity service in the catalog. Idempotent, like ``keystone-manage
bootstrap``: running it again changes nothing that exists (the admin password included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.models import (
    DEFAULT_DOMAIN_ID,
    SYSTEM_TARGET,
    Domain,
    Endpoint,
    ImpliedRole,
    Project,
    Region,
    Role,
    RoleAssignment,
    Service,
    User,
)
from cascade.identity.passwords import generated_password, hash_password
from cascade.identity.store import bump_revision

ADMIN_NAME = "admin"
DEFAULT_ROLES = ("admin", "member", "reader")
# As keystone-manage bootstrap makes them: admin implies member, member implies reader.
IMPLIED_BY_BOOTSTRAP = (("admin", "member"), ("member", "reader"))
INTERFACES = ("public", "internal", "admin")


@dataclass(frozen=True)
class BootstrapResult:
    admin_user_id: str
    admin_project_id: str
    admin_created: bool
    generated_password: str | None  # set only when this run generated the admin's password


def bootstrap(
    db: Database, admin_password: str | None, public_url: str, region: str, rounds: int
) -> BootstrapResult:
    with db.session() as session:
        bump_revision(session)
        _ensure(
            session,
            Domain,
            Domain.id == DEFAULT_DOMAIN_ID,
            id=DEFAULT_DOMAIN_ID,
            name="Default",
            description="The default domain",
        )
        roles = {
            name: _ensure(session, Role, Role.name == name, name=name) for name in DEFAULT_ROLES
        }
        for prior, implied in IMPLIED_BY_BOOTSTRAP:
            key = {"prior_role_id": roles[prior].id, "implied_role_id": roles[implied].id}
            if session.get(ImpliedRole, key) is None:
                session.add(ImpliedRole(**key))
        project = _ensure(
            session,
            Project,
            Project.name == ADMIN_NAME,
            name=ADMIN_NAME,
            domain_id=DEFAULT_DOMAIN_ID,
            description="Bootstrap project",
        )
        existing = session.scalar(
            select(User).where(User.name == ADMIN_NAME, User.domain_id == DEFAULT_DOMAIN_ID)
        )
        generated = None
        admin_created = existing is None
        if existing is None:
            password = admin_password or generated_password()
            generated = None if admin_password else password
            existing = User(
                name=ADMIN_NAME,
                domain_id=DEFAULT_DOMAIN_ID,
                password_hash=hash_password(password, rounds),
                default_project_id=project.id,
            )
            session.add(existing)
            session.flush()
        # admin on the bootstrap project and, as keystone-manage bootstrap does, on the system.
        for target_type, target_id in (("project", project.id), ("system", SYSTEM_TARGET)):
            key = {"user_id": existing.id, "target_id": target_id, "role_id": roles["admin"].id}
            if session.get(RoleAssignment, key) is None:
                session.add(RoleAssignment(target_type=target_type, **key))
        ensure_identity_endpoints(session, region, f"{public_url}/identity/v3")
        return BootstrapResult(existing.id, project.id, admin_created, generated)


def ensure_identity_endpoints(session: Session, region: str, url: str) -> None:
    """Make ``url`` the identity endpoint of ``region`` on every interface (idempotent)."""
    ensure_endpoints(session, region, "identity", "keystone", url)


def ensure_endpoints(
    session: Session, region: str, service_type: str, service_name: str, url: str
) -> None:
    """Make ``url`` the ``service_type`` endpoint of ``region`` on every interface."""
    _ensure(session, Region, Region.id == region, id=region)
    service = _ensure(
        session,
        Service,
        Service.type == service_type,
        type=service_type,
        name=service_name,
    )
    for interface in INTERFACES:
        endpoint = _ensure(
            session,
            Endpoint,
            (Endpoint.service_id == service.id)
            & (Endpoint.region_id == region)
            & (Endpoint.interface == interface),
            service_id=service.id,
            region_id=region,
            interface=interface,
            url=url,
        )
        endpoint.url = url


T = TypeVar("T")


def _ensure(session: Session, model: type[T], where: object, **fields: object) -> T:
    row = session.scalar(select(model).where(where))  # type: ignore[arg-type]
    if row is None:
        row = model(**fields)
        session.add(row)
        session.flush()
    return row


def move_identity_endpoint(db: Database, region: str, url: str) -> str | None:
    """Make ``url`` Cascade's identity endpoint in ``region`` (``cascade up`` keeps it at the
    effective public URL, so clients follow the catalog to where the server answers).
    Returns the public URL it replaced, or None when it was already ``url``."""
    with db.session() as session:
        current = session.scalar(
            select(Endpoint.url)
            .join(Service, Service.id == Endpoint.service_id)
            .where(
                Service.type == "identity",
                Endpoint.region_id == region,
                Endpoint.interface == "public",
            )
        )
        if current == url:
            return None
        bump_revision(session)
        ensure_identity_endpoints(session, region, url)
        return current or "none"
