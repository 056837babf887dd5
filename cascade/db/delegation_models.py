"""Tables of identity delegation (issue 18), in Keystone's vocabulary: application
credentials with their access rules, and trusts (OS-TRUST). On the declarative base of
``models``; migration 0022. Every table is in the identity change log, so replicas hold them.

A row goes with its user (and its project) at the database: the foreign keys cascade, at the
master and at every replica applying the user's deletion, so no writer has to remember them.
Roles are kept as a JSON list of role ids: a role deleted later is simply no longer found
(Keystone drops it from what the credential or trust grants).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cascade.db.models import Base, UTCDateTime, new_id, utcnow


class AccessRule(Base):
    """A request an application credential may make (service type, path glob, method);
    shared by every credential of its user that names the same triple."""

    __tablename__ = "access_rules"
    __table_args__ = (UniqueConstraint("user_id", "service", "path", "method"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    service: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(225))
    method: Mapped[str] = mapped_column(String(16))


class ApplicationCredential(Base):
    """A user's delegation of (some of) its roles on one project to an application, which
    logs in with the id (or name) and a secret kept only as a bcrypt hash."""

    __tablename__ = "application_credentials"
    __table_args__ = (UniqueConstraint("user_id", "name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    secret_hash: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    unrestricted: Mapped[bool] = mapped_column(Boolean, default=False)
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)  # role ids
    access_rules: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # rule ids
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Trust(Base):
    """The trustor lets the trustee act with ``roles`` on ``project_id`` (as the trustor
    itself when ``impersonation``), until ``expires_at`` or for ``remaining_uses`` tokens.
    ``redelegation_count``: how many more times it may be delegated on (0: never)."""

    __tablename__ = "trusts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    trustor_user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    trustee_user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=True
    )
    impersonation: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    remaining_uses: Mapped[int | None] = mapped_column(Integer, nullable=True)
    redelegation_count: Mapped[int] = mapped_column(Integer, default=0)
    redelegated_trust_id: Mapped[str | None] = mapped_column(
        ForeignKey("trusts.id", ondelete="CASCADE"), nullable=True
    )
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)  # role ids
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
