"""Tables of replication policies (issue 17): a policy keeping one kind of a project's
resources (images, flavors, security groups, keypairs) at its sites, the jobs that carry it
out (one per run: on create, on demand, when the audit finds a site missing what it should
have) with an item per site and resource, and Cascade's record of what it put at each site
(the target id and the digest of the state it expects there), and what its jobs failed to
write at a site, with the audit's backoff; and the image copies' bandwidth buckets. On the
declarative base of ``models``; migrations 0017, the one adding ``replica_failures`` and 0028."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cascade.db.models import Base, UTCDateTime, new_id, utcnow


class ReplicationPolicy(Base):
    """One kind of a project's resources kept at ``sites`` (site ids; None: every site of
    the project). For images, flavors and security groups ``source_site_id``'s resources of
    that kind (only ``names``, if given) are the desired state; for keypairs Cascade's own
    keypairs are. ``conflict`` says who wins when a site differs: ``cascade_wins``,
    ``site_wins`` or ``report``. ``drift`` is the audit's last finding per site name."""

    __tablename__ = "replication_policies"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    source_site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id"), nullable=True)
    names: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    sites: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    conflict: Mapped[str] = mapped_column(String(16))
    bandwidth_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    task_operation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    drift: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    audited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReplicationJob(Base):
    """One run of a policy (``reason``: created, requested, audit), carried out by the
    operation ``operation_id``; ``desired`` is the state read from the source for it."""

    __tablename__ = "replication_jobs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    policy_id: Mapped[str] = mapped_column(
        ForeignKey("replication_policies.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    operation_id: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    desired: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ReplicationItem(Base):
    """What a job did with one resource (by name) at one site: ``action`` create, update,
    delete or none; ``status`` pending, running, done, drift (reported, not repaired) or
    error (``error`` names the site and the resource); bytes for images (``bytes_sent``: what
    the item's copy put to the target over all its attempts, each chunk counted as its upload
    starts, so ``bytes_sent - bytes_total`` is what an interruption cost); the target's id."""

    __tablename__ = "replication_items"
    job_id: Mapped[str] = mapped_column(
        ForeignKey("replication_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    bytes_done: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    bytes_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    bytes_sent: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    target_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ReplicaRecord(Base):
    """A resource Cascade put (or adopted) at a site for a policy: its id there and the
    digest of the state Cascade expects there. Only what has a record is ever deleted at a
    site because its source is gone."""

    __tablename__ = "replica_records"
    policy_id: Mapped[str] = mapped_column(
        ForeignKey("replication_policies.id", ondelete="CASCADE"), primary_key=True
    )
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(255))
    digest: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ReplicaFailure(Base):
    """A resource a policy's jobs failed to write at a site (the site refused it), kept until
    a job writes it or it is no longer wanted there: the last error, naming the site and the
    resource; ``failures``, how many jobs in a row failed it; ``wait_passes``, how many more
    audit passes leave it be before the audit starts a job for it again."""

    __tablename__ = "replica_failures"
    policy_id: Mapped[str] = mapped_column(
        ForeignKey("replication_policies.id", ondelete="CASCADE"), primary_key=True
    )
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    error: Mapped[str] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(Integer)
    wait_passes: Mapped[int] = mapped_column(Integer)
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BandwidthBucket(Base):
    """The token bucket of image copies to one site under one bandwidth limit (bytes per
    second), shared by every worker (``cascade.replication.bandwidth``): ``free_at`` is the
    wall-clock time (epoch seconds) by which the bytes taken so far are paid for."""

    __tablename__ = "bandwidth_buckets"
    site: Mapped[str] = mapped_column(String(255), primary_key=True)
    rate: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    free_at: Mapped[float] = mapped_column(Float)
