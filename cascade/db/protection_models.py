"""Tables of protection (geo-redundancy, issue 16): a plan protecting an ordered list of
servers at one site for another, its members (each server with its volumes), and its
checkpoints (one consistency point of every member volume, with the freeze that made it).
On the declarative base of ``models``; migration 0014."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cascade.db.models import Base, UTCDateTime, new_id, utcnow


class ProtectionPlan(Base):
    """What to protect (the members, in their freeze order), where from and to, how
    (``strategy``), how long a VM may stay frozen and how many checkpoints to keep.
    ``site_group_id`` is the volume group Cascade keeps for it at the source site."""

    __tablename__ = "protection_plans"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255))
    source_site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    target_site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    strategy: Mapped[str] = mapped_column(String(32))
    freeze_bound_s: Mapped[float] = mapped_column()
    retention: Mapped[int] = mapped_column(Integer)
    site_group_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    task_operation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PlanMember(Base):
    """A server of a plan at ``position`` (frozen in ascending order, thawed in descending),
    with the ids of its volumes at the source site."""

    __tablename__ = "plan_members"
    plan_id: Mapped[str] = mapped_column(
        ForeignKey("protection_plans.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    server_id: Mapped[str] = mapped_column(ForeignKey("servers.id"))
    volume_ids: Mapped[list[str]] = mapped_column(JSON, default=list)


class Checkpoint(Base):
    """One consistency point of a plan: the group snapshot taken while every member was
    frozen (``consistency_point`` is its time; ``volumes`` maps each volume id to its
    snapshot), the freeze window (first freeze to last thaw), and ``frozen``: the positions
    this checkpoint may have frozen and not yet thawed, written before each quiesce, so
    whichever worker runs the workflow thaws from it. ``frozen_by`` names the worker process
    that froze them."""

    __tablename__ = "checkpoints"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    plan_id: Mapped[str] = mapped_column(
        ForeignKey("protection_plans.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    operation_id: Mapped[str] = mapped_column(String(32))
    consistency_point: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    site_group_snapshot_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    volumes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    frozen: Mapped[list[int]] = mapped_column(JSON, default=list)
    frozen_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    first_freeze_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_thaw_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
