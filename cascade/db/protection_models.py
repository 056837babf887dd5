"""Tables of protection (geo-redundancy, issue 16): a plan protecting an ordered list of
servers at one site for another, its members (each server with its volumes), its
checkpoints (one consistency point of every member volume, with the freeze that made it) and
their volumes (the snapshot at the source site and the backup's manifest in the chunk
store), the chunks stored, and restores at another site. On the declarative base of
``models``; migrations 0014, 0015, 0016 (strategies 2 and 3: replicas and images) and 0018
(the servers' ports on Cascade networks, a restore's ports, service IP and clean-up), 0027
(a plan's checkpoint schedule)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cascade.db.models import Base, UTCDateTime, new_id, utcnow


class ProtectionPlan(Base):
    """What to protect (the members, in their freeze order), where from and to, how
    (``strategy``), how long a VM may stay frozen, how many checkpoints to keep and where
    their backups go (``chunk_store``, a URL: see ``chunk_store.open_store``).
    ``site_group_id`` is the volume group Cascade keeps for it at the source site.
    ``checkpoint_every_s``: its schedule, seconds between the checkpoints the engine's
    schedule takes (``protection.schedule``); none: checkpoints only on request."""

    __tablename__ = "protection_plans"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255))
    source_site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    target_site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    strategy: Mapped[str] = mapped_column(String(32))
    freeze_bound_s: Mapped[float] = mapped_column(Float)
    retention: Mapped[int] = mapped_column(Integer)
    checkpoint_every_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    chunk_store: Mapped[str] = mapped_column(String(512))
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
    that froze them. ``images`` (strategy 3, image snapshot): per server id its image at
    the source (``source``), its copy at the target (``target``), ``size`` and the digest
    both have (``hash_algo``, ``hash``). ``ports``: per server id its port on a Cascade
    network when the checkpoint began (``port``, ``network_id``, ``network``, ``ip``,
    ``mac``), which a restore re-creates at its target."""

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
    store_url: Mapped[str] = mapped_column(String(512))
    backed_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    frozen: Mapped[list[int]] = mapped_column(JSON, default=list)
    frozen_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    first_freeze_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_thaw_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    images: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ports: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CheckpointVolume(Base):
    """One volume of a checkpoint: its server (and the member's ``position``), its
    ``device`` there, its snapshot at the source site, and its backup: ``blocks`` maps each
    non-zero block index (as a string) to its chunk ``[name, sha256]`` (the whole volume,
    unchanged blocks inherited from ``parent_checkpoint_id``'s manifest); progress in
    ``done_blocks`` of ``changed_blocks``, ``read_bytes`` read at the site and
    ``stored_bytes`` of chunks the store did not hold yet. ``replica`` (strategy 2, storage
    replication): the reference of the volume's replica at the replication target, which
    holds ``snapshot_id`` (the consistency point); no backup is made."""

    __tablename__ = "checkpoint_volumes"
    checkpoint_id: Mapped[str] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="CASCADE"), primary_key=True
    )
    volume_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    server_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(64))
    snapshot_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    block_size: Mapped[int] = mapped_column(Integer, default=0)
    parent_checkpoint_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    blocks: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    changed_blocks: Mapped[int] = mapped_column(Integer, default=0)
    done_blocks: Mapped[int] = mapped_column(Integer, default=0)
    read_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    replica: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class StoredChunk(Base):
    """A chunk Cascade puts in a chunk store (``name`` and ``sha256``: the SHA-256 of its
    bytes; the name is a BLAKE3 in stores written before 2026-12-07); ``state`` uploading,
    stored or deleting. ``claimed_at``: the last time a backup counted on it, which
    retention's sweep respects (see ``backups``)."""

    __tablename__ = "stored_chunks"
    store_url: Mapped[str] = mapped_column(String(512), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Restore(Base):
    """A checkpoint brought back at ``target_site_id``: the ``mapping`` it was asked with
    (flavors, networks, availability zone), per source volume its restored volume and
    progress (``volumes``), per source server its new Cascade server (``servers``), and the
    RTO: ``started_at`` until every server ACTIVE with its data verified. ``ports``: per
    source server the port its restored server gets on a Cascade network (``network_id``,
    ``network``, ``ip``, ``mac``, ``port``; once made: ``server``, and ``moved_from`` for
    a port moved from the source server: its site, site port, host and VTEP there).
    ``service_ip``: the service IP asked to move (``id``, ``address``, ``to``: a source
    server) and how its move went. ``cleanup``: what a failed restore removed again."""

    __tablename__ = "restores"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    plan_id: Mapped[str] = mapped_column(String(64))
    checkpoint_id: Mapped[str] = mapped_column(String(64))
    target_site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    mapping: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16))
    operation_id: Mapped[str] = mapped_column(String(32))
    volumes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    servers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    ports: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    service_ip: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    cleanup: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    rto_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
