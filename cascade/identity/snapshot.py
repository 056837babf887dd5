"""The identity read model: every identity row in memory, reloaded when the revision moves.

Token validation and every identity read are served from an ``IdentitySnapshot``; the only
database work is reading one integer (the revision) at most once per refresh interval and
after this process's own identity writes, so a write made by any API process is seen by
every other within that interval.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.models import (
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
    User,
)
from cascade.identity import inheritance
from cascade.identity.store import REVISION_BUMPED

T = TypeVar("T")


@dataclass
class IdentitySnapshot:
    revision: int
    domains: dict[str, Domain] = field(default_factory=dict)
    projects: dict[str, Project] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)
    regions: dict[str, Region] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    assignments: list[RoleAssignment] = field(default_factory=list)
    groups: dict[str, Group] = field(default_factory=dict)
    members: list[GroupMember] = field(default_factory=list)
    group_assignments: list[GroupRoleAssignment] = field(default_factory=list)
    inferences: list[ImpliedRole] = field(default_factory=list)
    inherited: list[InheritedRoleAssignment] = field(default_factory=list)  # OS-INHERIT
    # OS-EP-FILTER: endpoint groups, and the endpoints and groups associated with projects
    endpoint_groups: dict[str, EndpointGroup] = field(default_factory=dict)
    project_endpoints: list[ProjectEndpoint] = field(default_factory=list)
    project_endpoint_groups: list[ProjectEndpointGroup] = field(default_factory=list)
    policies: dict[str, Policy] = field(default_factory=dict)
    consumers: dict[str, OAuthConsumer] = field(default_factory=dict)
    revocations: list[RevocationEvent] = field(default_factory=list)
    # Indexes derived from the rows above. ``roles_on``: roles assigned to the user itself;
    # ``held_on``: those and the roles of the user's groups (what tokens carry).
    roles_on: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    group_roles_on: dict[tuple[str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )
    held_on: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    groups_of: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    members_of: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    implies: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    revoked_audit_ids: dict[str, datetime] = field(default_factory=dict)
    revoked_users: dict[str, datetime] = field(default_factory=dict)
    revoked_projects: dict[str, datetime] = field(default_factory=dict)
    # Views derived from this snapshot on first use (e.g. the rendered catalog).
    memo: dict[Any, Any] = field(default_factory=dict)

    def index(self) -> None:
        for assignment in self.assignments:
            self.roles_on[(assignment.user_id, assignment.target_id)].add(assignment.role_id)
            self.held_on[(assignment.user_id, assignment.target_id)].add(assignment.role_id)
        for inference in self.inferences:
            self.implies[inference.prior_role_id].add(inference.implied_role_id)
        for member in self.members:
            self.groups_of[member.user_id].add(member.group_id)
            self.members_of[member.group_id].add(member.user_id)
        for grant in self.group_assignments:
            self.group_roles_on[(grant.group_id, grant.target_id)].add(grant.role_id)
            for user_id in self.members_of.get(grant.group_id, ()):
                self.held_on[(user_id, grant.target_id)].add(grant.role_id)
        for user_id, project_id, role_id in inheritance.held(
            self.inherited, self.projects, self.members_of
        ):
            self.held_on[(user_id, project_id)].add(role_id)
        for event in self.revocations:
            if event.audit_id:
                _keep_latest(self.revoked_audit_ids, event.audit_id, event.issued_before)
            elif event.user_id:
                _keep_latest(self.revoked_users, event.user_id, event.issued_before)
            elif event.project_id:
                _keep_latest(self.revoked_projects, event.project_id, event.issued_before)

    def domain_by_name(self, name: str) -> Domain | None:
        return self._by_name(Domain, self.domains, name)

    def project_by_name(self, name: str, domain_id: str) -> Project | None:
        return self._by_name(Project, self.projects, name, domain_id)

    def user_by_name(self, name: str, domain_id: str) -> User | None:
        return self._by_name(User, self.users, name, domain_id)

    def role_by_name(self, name: str) -> Role | None:
        return self._by_name(Role, self.roles, name)

    def _by_name(self, kind: type[T], rows: dict[str, T], *key: str) -> T | None:
        """Name lookups through an index built on first use for each kind."""
        index_key = f"by_name:{kind.__name__}"
        if index_key not in self.memo:
            self.memo[index_key] = {
                (row.name, *((row.domain_id,) if len(key) == 2 else ())): row  # type: ignore[attr-defined]
                for row in rows.values()
            }
        found: T | None = self.memo[index_key].get(key)
        return found

    def effective_roles(self, user_id: str, target_id: str) -> list[Role]:
        """Roles held on the target (the user's own, its groups' and those inherited from
        above) plus the roles they imply, by name order; a domain-specific role only counts
        for the global roles it implies (Keystone's)."""
        memo_key = ("roles", user_id, target_id)
        if memo_key not in self.memo:
            held = set(self.held_on.get((user_id, target_id), ()))
            for role_id in list(held):
                held.update(self.implied_by(role_id))
            found = [self.roles[r] for r in held if r in self.roles and not self.roles[r].domain_id]
            self.memo[memo_key] = sorted(found, key=lambda role: role.name)
        roles: list[Role] = self.memo[memo_key]
        return roles

    def implied_by(self, role_id: str) -> list[str]:
        """Every role ``role_id`` implies, directly or through others (Keystone follows
        inferences transitively), in the order found; never ``role_id`` itself."""
        found: list[str] = []
        pending = sorted(self.implies.get(role_id, ()))
        while pending:
            implied = pending.pop(0)
            if implied == role_id or implied in found:
                continue
            found.append(implied)
            pending.extend(sorted(self.implies.get(implied, ())))
        return found

    def projects_of(self, user_id: str) -> list[Project]:
        ids = {target for (user, target) in self.held_on if user == user_id}
        return [self.projects[i] for i in sorted(ids) if i in self.projects]


def _keep_latest(index: dict[str, datetime], key: str, when: datetime) -> None:
    if key not in index or index[key] < when:
        index[key] = when


def load_snapshot(db: Database) -> IdentitySnapshot:
    with db.session() as session:
        revision = session.scalar(select(IdentityRevision.revision)) or 0
        snapshot = IdentitySnapshot(revision=revision)
        snapshot.domains = {d.id: d for d in session.scalars(select(Domain))}
        snapshot.projects = {p.id: p for p in session.scalars(select(Project))}
        snapshot.users = {u.id: u for u in session.scalars(select(User))}
        snapshot.roles = {r.id: r for r in session.scalars(select(Role))}
        snapshot.regions = {r.id: r for r in session.scalars(select(Region))}
        snapshot.services = {s.id: s for s in session.scalars(select(Service))}
        snapshot.endpoints = {e.id: e for e in session.scalars(select(Endpoint))}
        snapshot.assignments = list(session.scalars(select(RoleAssignment)))
        snapshot.groups = {g.id: g for g in session.scalars(select(Group))}
        snapshot.members = list(session.scalars(select(GroupMember)))
        snapshot.group_assignments = list(session.scalars(select(GroupRoleAssignment)))
        snapshot.inferences = list(session.scalars(select(ImpliedRole)))
        snapshot.inherited = list(session.scalars(select(InheritedRoleAssignment)))
        snapshot.endpoint_groups = {g.id: g for g in session.scalars(select(EndpointGroup))}
        snapshot.project_endpoints = list(session.scalars(select(ProjectEndpoint)))
        snapshot.project_endpoint_groups = list(session.scalars(select(ProjectEndpointGroup)))
        snapshot.policies = {p.id: p for p in session.scalars(select(Policy))}
        snapshot.consumers = {c.id: c for c in session.scalars(select(OAuthConsumer))}
        snapshot.revocations = list(session.scalars(select(RevocationEvent)))
        session.expunge_all()
    snapshot.index()
    return snapshot


class IdentityCache:
    """Holds the current snapshot and reloads it when the database revision has moved.

    The revision is read at most once per ``refresh_interval`` seconds, and at the next call
    after a commit of this process that moved it (``store.bump_revision``); so a change made
    through this process is seen at once, and one made through another process within
    ``refresh_interval``. Other commits (an accepted operation, say) cost no read.
    """

    def __init__(self, db: Database, refresh_interval: float) -> None:
        self._db = db
        self._interval = refresh_interval
        self._lock = threading.Lock()
        self._snapshot = load_snapshot(db)
        self._checked_at = time.monotonic()
        self._stale = False
        db.listen("after_commit", self._after_commit)

    def _after_commit(self, session: Session) -> None:
        if session.info.get(REVISION_BUMPED):
            self._stale = True

    def cached(self) -> IdentitySnapshot:
        """The snapshot as of this process's last check (no database round trip)."""
        return self._snapshot

    def current(self) -> IdentitySnapshot:
        if not self._stale and time.monotonic() - self._checked_at < self._interval:
            return self._snapshot
        with self._lock:
            self._stale = False
            self._checked_at = time.monotonic()
            with self._db.engine.connect() as connection:
                revision = connection.exec_driver_sql(
                    "SELECT revision FROM identity_revision WHERE id = 1"
                ).scalar_one()
            if revision != self._snapshot.revision:
                self._snapshot = load_snapshot(self._db)
        return self._snapshot
