"""Identity writes. Every write bumps the identity revision in the same transaction.

Reads come from the snapshot (``cascade.identity.snapshot``); this module only changes rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cascade.db import Database
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
    IdentityRevision,
    ImpliedRole,
    InheritedRoleAssignment,
    OAuthConsumer,
    Policy,
    Project,
    ProjectEndpoint,
    ProjectEndpointGroup,
    Region,
    RevocationEvent,
    Role,
    RoleAssignment,
    Service,
    Site,
    User,
    utcnow,
)
from cascade.errors import BadRequest, Conflict, Forbidden, NotFound
from cascade.identity.passwords import hash_password


@dataclass(frozen=True)
class Kind:
    """How one identity resource is stored: its table, references and what blocks deletion."""

    name: str
    model: type[Base]
    references: dict[str, type[Base]] = field(default_factory=dict)
    blockers: tuple[tuple[Any, str], ...] = ()
    on_delete: Callable[[Session, str], None] | None = None
    on_write: Callable[[Session, dict[str, Any]], None] | None = None  # create and update


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


def _place_project(session: Session, fields: dict[str, Any]) -> None:
    """A new project's domain and parent, as Keystone has them: under its parent project (in
    the parent's domain) or at the top of its domain (its parent id is the domain's id)."""
    if "parent_id" not in fields:  # an update: a project does not move
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


def _make_named_region(session: Session, fields: dict[str, Any]) -> None:
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


def _check_domain_role(role: Role, target: Domain | Project | None) -> None:
    """A domain-specific role is assigned only on its domain or a project of it."""
    domain_id = target.id if isinstance(target, Domain) else getattr(target, "domain_id", None)
    if domain_id != role.domain_id:
        raise Forbidden(
            f"Role {role.id} belongs to domain {role.domain_id}: it is assigned only on that "
            "domain and its projects."
        )


def bump_revision(session: Session) -> None:
    session.execute(update(IdentityRevision).values(revision=IdentityRevision.revision + 1))


class IdentityStore:
    def __init__(self, db: Database, password_rounds: int, master_url: str | None = None) -> None:
        self._db = db
        self._rounds = password_rounds
        self._master_url = master_url  # set: this is a read-only replica of that master

    def become_replica_of(self, master_url: str) -> None:
        """From now on this copy is a read-only replica of ``master_url``'s."""
        self._master_url = master_url

    def create(self, kind: Kind, fields: dict[str, Any]) -> Any:
        fields = self._hash_password(fields)
        with self.writing(kind.name) as session:
            if kind.on_write:
                kind.on_write(session, fields)
            self._check_references(session, kind, fields)
            row = kind.model(**fields)
            session.add(row)
            session.flush()
            return row

    def update(self, kind: Kind, row_id: str, fields: dict[str, Any]) -> Any:
        password_changed = fields.get("password") is not None
        fields = self._hash_password(fields)
        with self.writing(kind.name) as session:
            row = self._get(session, kind, row_id)
            if kind.on_write:
                kind.on_write(session, fields)
            self._check_references(session, kind, fields)
            for name, value in fields.items():
                setattr(row, name, value)
            if password_changed:
                session.add(RevocationEvent(user_id=row_id, issued_before=utcnow()))
            session.flush()
            return row

    def delete(self, kind: Kind, row_id: str) -> None:
        with self.writing(kind.name) as session:
            row = self._get(session, kind, row_id)
            if isinstance(row, Domain) and row.enabled:
                raise Forbidden("Cannot delete a domain that is enabled, please disable it first.")
            for column, what in kind.blockers:
                if session.scalar(select(column).where(column == row_id).limit(1)) is not None:
                    raise Conflict(f"{kind.name} {row_id} still has {what}; remove them first")
            if kind.on_delete:
                kind.on_delete(session, row_id)
            session.delete(row)

    def set_assignment(
        self,
        actor: tuple[str, str],
        target_type: str,
        target_id: str,
        role_id: str,
        present: bool,
        inherited: bool = False,
    ) -> None:
        """Grant (``present``) or revoke ``role_id`` on a project, domain or the system
        (``target_id`` ``SYSTEM_TARGET``) for ``actor``: ``("user", id)`` or ``("group", id)``.
        ``inherited``: Keystone's OS-INHERIT assignment, held on every project below the
        domain or project rather than on it."""
        actor_type, actor_id = actor
        model: type[RoleAssignment] | type[GroupRoleAssignment] | type[InheritedRoleAssignment]
        key = {f"{actor_type}_id": actor_id, "target_id": target_id, "role_id": role_id}
        columns = {"target_type": target_type}
        if inherited:
            model = InheritedRoleAssignment
            key = {"actor_id": actor_id, "target_id": target_id, "role_id": role_id}
            columns["actor_type"] = actor_type
        elif actor_type == "group":
            model = GroupRoleAssignment
        else:
            model = RoleAssignment
        with self.writing("role assignment") as session:
            self._get(session, GROUP if actor_type == "group" else USER, actor_id)
            target = None
            if target_type != "system":
                target = self._get(
                    session, PROJECT if target_type == "project" else DOMAIN, target_id
                )
            role = self._get(session, ROLE, role_id)
            if present and role.domain_id is not None:
                _check_domain_role(role, target)
            existing = session.get(model, key)
            if present and existing is None:
                session.add(model(**columns, **key))
            elif not present and existing is None:
                raise NotFound(
                    f"Could not find role assignment with role: {role_id}, "
                    f"{actor_type}: {actor_id}, {target_type}: {target_id}."
                )
            elif not present:
                session.delete(existing)

    def set_link(
        self, model: type[Base], ends: dict[str, Kind], ids: dict[str, str], present: bool
    ) -> None:
        """Make (``present``) or remove the association row ``model(**ids)``, each of its
        ``ends`` (column name: the kind it names) checked to exist first (404)."""
        with self.writing(model.__tablename__) as session:
            for column, kind in ends.items():
                self._get(session, kind, ids[column])
            existing = session.get(model, ids)
            if present and existing is None:
                session.add(model(**ids))
            elif not present and existing is None:
                found = ", ".join(f"{name} {value}" for name, value in ids.items())
                raise NotFound(f"Could not find the association of {found}.")
            elif not present:
                session.delete(existing)

    def set_inference(self, prior_role_id: str, implied_role_id: str, present: bool) -> None:
        """Make (``present``) or remove the rule that ``prior_role_id`` implies
        ``implied_role_id``. A role cannot imply itself, nor imply ``admin`` (Keystone's
        default ``prohibited_implied_role``)."""
        with self.writing("implied role") as session:
            prior = self._get(session, ROLE, prior_role_id)
            implied = self._get(session, ROLE, implied_role_id)
            key = {"prior_role_id": prior_role_id, "implied_role_id": implied_role_id}
            existing = session.get(ImpliedRole, key)
            if present and (implied_role_id == prior_role_id or implied.name == "admin"):
                raise Forbidden(f"{implied_role_id} cannot be an implied role.")
            if present and prior.domain_id is None and implied.domain_id is not None:
                raise Forbidden("A global role cannot imply a domain-specific role.")
            if present and existing is None:
                session.add(ImpliedRole(**key))
            elif not present and existing is None:
                raise NotFound(f"{prior_role_id} does not imply {implied_role_id}.")
            elif not present:
                session.delete(existing)

    def set_membership(self, group_id: str, user_id: str, present: bool) -> None:
        """Add (``present``) or remove a user from a group."""
        with self.writing("group membership") as session:
            self._get(session, GROUP, group_id)
            self._get(session, USER, user_id)
            existing = session.get(GroupMember, {"group_id": group_id, "user_id": user_id})
            if present and existing is None:
                session.add(GroupMember(group_id=group_id, user_id=user_id))
            elif not present and existing is None:
                raise NotFound(f"User {user_id} is not a member of group {group_id}.")
            elif not present:
                session.delete(existing)

    def revoke(
        self,
        issued_before: datetime,
        audit_id: str | None = None,
        user_id: str | None = None,
        project_id: str | None = None,
    ) -> None:
        with self.writing("revocation event") as session:
            session.add(
                RevocationEvent(
                    audit_id=audit_id,
                    user_id=user_id,
                    project_id=project_id,
                    issued_before=issued_before,
                )
            )

    # -- helpers ---------------------------------------------------------------------------

    @contextmanager
    def writing(self, what: str) -> Iterator[Session]:
        """A write transaction that bumps the identity revision; integrity errors become 409.
        A replica refuses, naming the master that takes writes."""
        if self._master_url is not None:
            raise Forbidden(
                "This site holds a read-only replica of the identity data; send identity "
                f"writes to the master at {self._master_url}."
            )
        try:
            with self._db.session() as session:
                bump_revision(session)
                yield session
        except IntegrityError as error:
            raise Conflict(f"{what} conflicts with an existing one") from error

    def _hash_password(self, fields: dict[str, Any]) -> dict[str, Any]:
        if "password" not in fields:
            return fields
        fields = dict(fields)
        password = fields.pop("password")
        if password is not None:
            fields["password_hash"] = hash_password(password, self._rounds)
        return fields

    @staticmethod
    def _get(session: Session, kind: Kind, row_id: str) -> Any:
        row = session.get(kind.model, row_id)
        if row is None:
            raise NotFound(f"Could not find {kind.name}: {row_id}.")
        return row

    @staticmethod
    def _check_references(session: Session, kind: Kind, fields: dict[str, Any]) -> None:
        for name, target in kind.references.items():
            value = fields.get(name)
            if value is None or session.get(target, value) is not None:
                continue
            if target is Domain:  # Keystone answers an unknown domain 404, other refs 400
                raise NotFound(f"Could not find domain: {value}.")
            raise BadRequest(f"{name} {value!r} does not exist")
