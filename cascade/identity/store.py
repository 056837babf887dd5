"""Identity writes. Every write bumps the identity revision in the same transaction.

Reads come from the snapshot (``cascade.identity.snapshot``); this module only changes rows,
each resource as its ``Kind`` (``cascade.identity.kinds``) says.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.models import (
    Base,
    Domain,
    GroupMember,
    GroupRoleAssignment,
    IdentityRevision,
    ImpliedRole,
    InheritedRoleAssignment,
    Project,
    RevocationEvent,
    Role,
    RoleAssignment,
    utcnow,
)
from cascade.errors import BadRequest, Conflict, Forbidden, NotFound
from cascade.identity.kinds import DOMAIN, GROUP, PROJECT, ROLE, USER, Kind
from cascade.identity.passwords import hash_password


def _check_domain_role(role: Role, target: Domain | Project | None) -> None:
    """A domain-specific role is assigned only on its domain or a project of it."""
    domain_id = target.id if isinstance(target, Domain) else getattr(target, "domain_id", None)
    if domain_id != role.domain_id:
        raise Forbidden(
            f"Role {role.id} belongs to domain {role.domain_id}: it is assigned only on that "
            "domain and its projects."
        )


# In a session's ``info``: its transaction moved the identity revision (``bump_revision``).
REVISION_BUMPED = "cascade.identity.revision-bumped"


def bump_revision(session: Session) -> None:
    session.execute(update(IdentityRevision).values(revision=IdentityRevision.revision + 1))
    session.info[REVISION_BUMPED] = True


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
                kind.on_write(session, fields, None)
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
                kind.on_write(session, fields, row_id)
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
            if isinstance(row, Project) and row.is_domain:  # it goes as the domain it is
                kind, row = DOMAIN, self._get(session, DOMAIN, row_id)
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
