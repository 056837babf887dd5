"""How each identity resource is stored (``Kind``): its table, the rows it references, what
blocks its deletion and what goes with it (Keystone's cascades: a user's assignments and
credentials, a domain's projects, users, groups and roles, ...), and what a write of it also
writes (a project's place in its tree, a project acting as a domain, an endpoint's named
region). ``cascade.identity.store`` applies them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cascade.db.models import (
    DEFAULT_DOMAIN_ID,
    Base,
    Credential,
    Domain,
    Endpoint,
    EndpointGroup,
    Group,
    GroupMember,
    GroupRoleAssignment,
    ImpliedRole,
    InheritedRoleAssignment,
    OAuthConsumer,
    Policy,
    Project,
    ProjectEndpoint,
    ProjectEndpointGroup,
    Region,
    Role,
    RoleAssignment,
    Service,
    Site,
    User,
    new_id,
)
from cascade.errors import BadRequest, Conflict, Forbidden, NotFound


@dataclass(frozen=True)
class Kind:
    """How one identity resource is stored: its table, references and what blocks deletion."""

    name: str
    model: type[Base]
    references: dict[str, type[Base]] = field(default_factory=dict)
    blockers: tuple[tuple[Any, str], ...] = ()
    on_delete: Callable[[Session, str], None] | None = None
    # On create (row id None) and update: may change the fields and write other rows.
    on_write: Callable[[Session, dict[str, Any], str | None], None] | None = None


INHERITED = InheritedRoleAssignment


def _drop_assignments_of_user(session: Session, user_id: str) -> None:
    """A user goes with its assignments, memberships and credentials (Keystone's)."""
    session.execute(delete(RoleAssignment).where(RoleAssignment.user_id == user_id))
    session.execute(delete(INHERITED).where(INHERITED.actor_id == user_id))
    session.execute(delete(GroupMember).where(GroupMember.user_id == user_id))
    session.execute(delete(Credential).where(Credential.user_id == user_id))


def _drop_assignments_of_group(session: Session, group_id: str) -> None:
    session.execute(delete(GroupRoleAssignment).where(GroupRoleAssignment.group_id == group_id))
    session.execute(delete(INHERITED).where(INHERITED.actor_id == group_id))
    session.execute(delete(GroupMember).where(GroupMember.group_id == group_id))


def _drop_assignments_on_target(session: Session, target_id: str) -> None:
    session.execute(delete(RoleAssignment).where(RoleAssignment.target_id == target_id))
    session.execute(delete(GroupRoleAssignment).where(GroupRoleAssignment.target_id == target_id))
    session.execute(delete(INHERITED).where(INHERITED.target_id == target_id))


def _drop_assignments_of_role(session: Session, role_id: str) -> None:
    session.execute(delete(RoleAssignment).where(RoleAssignment.role_id == role_id))
    session.execute(delete(GroupRoleAssignment).where(GroupRoleAssignment.role_id == role_id))
    session.execute(delete(INHERITED).where(INHERITED.role_id == role_id))
    session.execute(
        delete(ImpliedRole).where(
            (ImpliedRole.prior_role_id == role_id) | (ImpliedRole.implied_role_id == role_id)
        )
    )


def _drop_endpoint_links(session: Session, endpoint_id: str) -> None:
    session.execute(delete(ProjectEndpoint).where(ProjectEndpoint.endpoint_id == endpoint_id))


def _drop_endpoints_of_service(session: Session, service_id: str) -> None:
    endpoints = select(Endpoint.id).where(Endpoint.service_id == service_id)
    session.execute(delete(ProjectEndpoint).where(ProjectEndpoint.endpoint_id.in_(endpoints)))
    session.execute(delete(Endpoint).where(Endpoint.service_id == service_id))


def _drop_project_links(session: Session, projects: Any) -> None:
    """What goes with projects (``projects``: a select of their ids): their endpoint
    associations and their credentials."""
    session.execute(delete(ProjectEndpoint).where(ProjectEndpoint.project_id.in_(projects)))
    session.execute(
        delete(ProjectEndpointGroup).where(ProjectEndpointGroup.project_id.in_(projects))
    )
    session.execute(delete(Credential).where(Credential.project_id.in_(projects)))


def _drop_domain_contents(session: Session, domain_id: str) -> None:
    """Keystone deletes a (disabled) domain with what it holds: its projects, users and
    groups, and every assignment and membership they take part in. A project a site is
    registered in stops it (the site goes first)."""
    projects = select(Project.id).where(Project.domain_id == domain_id)
    users = select(User.id).where(User.domain_id == domain_id)
    groups = select(Group.id).where(Group.domain_id == domain_id)
    if session.scalar(select(Site.id).where(Site.project_id.in_(projects)).limit(1)):
        raise Conflict(f"domain {domain_id} has a project with sites; remove them first")
    session.execute(delete(RoleAssignment).where(RoleAssignment.target_id.in_(projects)))
    session.execute(delete(GroupRoleAssignment).where(GroupRoleAssignment.target_id.in_(projects)))
    session.execute(delete(INHERITED).where(INHERITED.target_id.in_(projects)))
    session.execute(delete(RoleAssignment).where(RoleAssignment.user_id.in_(users)))
    session.execute(
        delete(INHERITED).where(INHERITED.actor_id.in_(users) | INHERITED.actor_id.in_(groups))
    )
    session.execute(
        delete(GroupMember).where(GroupMember.user_id.in_(users) | GroupMember.group_id.in_(groups))
    )
    session.execute(delete(GroupRoleAssignment).where(GroupRoleAssignment.group_id.in_(groups)))
    session.execute(delete(Credential).where(Credential.user_id.in_(users)))
    _drop_project_links(session, projects)
    _drop_assignments_on_target(session, domain_id)
    for role_id in list(session.scalars(select(Role.id).where(Role.domain_id == domain_id))):
        _drop_assignments_of_role(session, role_id)
    session.execute(delete(Role).where(Role.domain_id == domain_id))
    for model in (User, Group, Project):
        session.execute(delete(model).where(model.domain_id == domain_id))


DOMAIN = Kind("domain", Domain, on_delete=_drop_domain_contents)


def _place_project(session: Session, fields: dict[str, Any], row_id: str | None) -> None:
    """A new project's domain and parent, as Keystone has them: under its parent project (in
    the parent's domain) or at the top of its domain (its parent id is the domain's id); or,
    given ``is_domain``, a project acting as a domain (Keystone's): a domain of the same id,
    name, description and enabled, which it keeps in step."""
    extra = dict(fields.get("extra") or {})
    is_domain = extra.pop("is_domain", None)
    if is_domain is not None:
        if not isinstance(is_domain, bool):
            raise BadRequest("is_domain must be true or false.")
        fields["extra"] = extra
    if row_id is not None:  # an update: a project does not move, nor turn into a domain
        current = session.get(Project, row_id)
        if current is not None and is_domain not in (None, current.is_domain):
            raise BadRequest("A project's is_domain cannot change.")
        domain = session.get(Domain, row_id) if current is not None and current.is_domain else None
        for name in ("name", "description", "enabled"):
            if domain is not None and name in fields:
                setattr(domain, name, fields[name])
        return
    if is_domain:
        _make_domain_project(session, fields)
        return
    parent_id = fields["parent_id"]
    domain_id = fields.get("domain_id")
    parent = session.get(Project, parent_id) if parent_id not in (None, domain_id) else None
    if parent_id not in (None, domain_id) and parent is None:
        raise NotFound(f"Could not find project: {parent_id}.")
    if parent is not None and domain_id not in (None, parent.domain_id):
        raise BadRequest("A project's parent must be in the project's domain.")
    fields["domain_id"] = parent.domain_id if parent else (domain_id or DEFAULT_DOMAIN_ID)
    fields["parent_id"] = parent.id if parent else fields["domain_id"]


def _make_domain_project(session: Session, fields: dict[str, Any]) -> None:
    if fields.get("parent_id") or fields.get("domain_id"):
        raise BadRequest("A project acting as a domain has neither a parent nor a domain.")
    fields["id"] = new_id()
    columns = {name: fields[name] for name in ("name", "description", "enabled") if name in fields}
    session.add(Domain(id=fields["id"], **columns))
    session.flush()
    fields.update(domain_id=fields["id"], parent_id=None, is_domain=True)


def _drop_project(session: Session, project_id: str) -> None:
    if session.scalar(select(Project.id).where(Project.parent_id == project_id).limit(1)):
        raise Forbidden(f"Project {project_id} has child projects: delete them first.")
    _drop_assignments_on_target(session, project_id)
    _drop_project_links(session, select(Project.id).where(Project.id == project_id))


PROJECT = Kind(
    "project",
    Project,
    references={"domain_id": Domain},
    blockers=((Site.project_id, "sites"),),
    on_delete=_drop_project,
    on_write=_place_project,
)
USER = Kind(
    "user",
    User,
    references={"domain_id": Domain, "default_project_id": Project},
    on_delete=_drop_assignments_of_user,
)
GROUP = Kind("group", Group, references={"domain_id": Domain}, on_delete=_drop_assignments_of_group)
ROLE = Kind("role", Role, references={"domain_id": Domain}, on_delete=_drop_assignments_of_role)
REGION = Kind(
    "region",
    Region,
    references={"parent_region_id": Region},
    blockers=((Endpoint.region_id, "endpoints"), (Region.parent_region_id, "child regions")),
)
SERVICE = Kind("service", Service, on_delete=_drop_endpoints_of_service)


def _make_named_region(session: Session, fields: dict[str, Any], _row_id: str | None) -> None:
    """Keystone's legacy ``region`` of an endpoint: the region of that id, made if missing
    (``region_id``, when given too, wins and must exist)."""
    region = fields.pop("region", None)
    if region is None or fields.get("region_id") is not None:
        return
    fields["region_id"] = region
    if session.get(Region, region) is None:
        session.add(Region(id=region, description=""))
        session.flush()


ENDPOINT = Kind(
    "endpoint",
    Endpoint,
    references={"service_id": Service, "region_id": Region},
    on_delete=_drop_endpoint_links,
    on_write=_make_named_region,
)


def _drop_endpoint_group_links(session: Session, group_id: str) -> None:
    session.execute(
        delete(ProjectEndpointGroup).where(ProjectEndpointGroup.endpoint_group_id == group_id)
    )


ENDPOINT_GROUP = Kind("endpoint group", EndpointGroup, on_delete=_drop_endpoint_group_links)
CREDENTIAL = Kind("credential", Credential, references={"user_id": User})


POLICY = Kind("policy", Policy)
CONSUMER = Kind("consumer", OAuthConsumer)
