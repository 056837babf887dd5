"""Request and response bodies of ``/v1/replication/policies`` and ``/v1/replication/jobs``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cascade.engine.schemas import OperationOut

NAME = r"^[A-Za-z0-9_. :-]+$"


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    kind: str = Field(
        min_length=1, max_length=32, description="images, flavors, security_groups or keypairs"
    )
    source_site: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="Site name or id whose resources of the kind are the desired state "
        "(images, flavors, security groups); none for keypairs (Cascade's own keypairs).",
    )
    names: list[str] | None = Field(
        None,
        max_length=1000,
        description="Only the source's resources of these names; omitted: all of them.",
    )
    sites: list[str] | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Target site names or ids of the project; omitted: every site of the "
        "project, now and later (the source excepted).",
    )
    conflict: str = Field(
        "report",
        min_length=1,
        max_length=16,
        description="cascade_wins (the desired state is written over the site's), site_wins "
        "(the site's version is adopted as the record) or report (drift is only reported)",
    )
    bandwidth_limit: int | None = Field(
        None, ge=1, description="Images: bytes per second per target site."
    )


class ItemOut(BaseModel):
    site: str
    name: str
    action: str = Field(description="create, update, delete or none")
    status: str = Field(description="pending, running, done, drift (reported) or error")
    bytes_done: int | None
    bytes_total: int | None
    bytes_sent: int | None = Field(
        description="Images: bytes put to the target over every attempt of this item's copy, "
        "each chunk counted as its upload starts; beyond bytes_total is what was sent again"
    )
    percent: float | None
    target_id: str | None
    error: str | None


class JobOut(BaseModel):
    id: str
    policy_id: str
    reason: str = Field(description="created, requested, audit or site_joined")
    status: str = Field(
        description="queued, running, waiting (the source site cannot be read: `error` says "
        "why, and it is read again), succeeded or failed"
    )
    operation: str
    progress: dict[str, int] = Field(description="Items by status")
    items: list[ItemOut] | None = None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class SiteDrift(BaseModel):
    in_sync: int
    missing: list[str]
    extra: list[str]
    changed: list[str]
    note: str | None = None
    checked_at: datetime | None = None


class FailureOut(BaseModel):
    name: str
    error: str = Field(description="The last failure, naming the site and the resource")
    failures: int = Field(description="Jobs in a row that failed to write it at the site")
    retry_in_passes: int = Field(
        description="Audit passes before the audit starts a job for it again (0: at the next)"
    )
    failed_at: datetime


class PolicyOut(BaseModel):
    id: str
    project_id: str
    kind: str
    source_site: str | None
    names: list[str] | None
    sites: list[str] = Field(description="The target sites now (names)")
    conflict: str
    bandwidth_limit: int | None
    status: str = Field(description="SYNCING, ACTIVE, ERROR or DELETING")
    task: str | None
    error: str | None
    last_job: JobOut | None
    drift: dict[str, SiteDrift] = Field(description="The audit's last finding per site")
    failing: dict[str, list[FailureOut]] = Field(
        default_factory=dict,
        description="Per site: what the site refused to take, and when it is tried again",
    )
    audited_at: datetime | None
    created_at: datetime


class PolicyEnvelope(BaseModel):
    policy: PolicyOut


class PolicyList(BaseModel):
    policies: list[PolicyOut]


class PolicyAccepted(BaseModel):
    policy: PolicyOut
    operation: OperationOut


class JobEnvelope(BaseModel):
    job: JobOut


class JobList(BaseModel):
    jobs: list[JobOut]


class JobAccepted(BaseModel):
    job: JobOut
    operation: OperationOut


def drift_out(found: dict[str, Any]) -> SiteDrift:
    return SiteDrift.model_validate(found)
