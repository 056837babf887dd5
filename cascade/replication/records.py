"""Replication's rows as the worker writes them: Cascade's record of what it put at a site
(``ReplicaRecord``: the id there and the digest of the state it expects), a job's items
(one per site and resource, with bytes for images), and a site's drift in the policy's view.
Shared by the jobs (``policy_steps``, ``image_steps``) and the audit (``audit``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update

from cascade.db.models import utcnow
from cascade.db.replication_models import ReplicaRecord, ReplicationItem, ReplicationPolicy
from cascade.engine.context import context
from cascade.replication.kinds import Decision


def current_records(policy_id: str, site_id: str) -> dict[str, str]:
    """Name -> the digest Cascade expects at the site."""
    with context().db.session() as session:
        rows = session.scalars(
            select(ReplicaRecord).where(
                ReplicaRecord.policy_id == policy_id, ReplicaRecord.site_id == site_id
            )
        )
        return {row.name: row.digest for row in rows}


def save_record(policy_id: str, site_id: str, name: str, target_id: str, digest: str) -> None:
    with context().db.session() as session:
        session.merge(
            ReplicaRecord(
                policy_id=policy_id, site_id=site_id, name=name, target_id=target_id, digest=digest
            )
        )


def forget_record(policy_id: str, site_id: str, name: str) -> None:
    with context().db.session() as session:
        session.execute(
            delete(ReplicaRecord).where(
                ReplicaRecord.policy_id == policy_id,
                ReplicaRecord.site_id == site_id,
                ReplicaRecord.name == name,
            )
        )


def set_item(
    job_id: str,
    site_id: str,
    decision: Decision,
    status: str,
    error: str | None,
    target_id: str | None = None,
) -> None:
    with context().db.session() as session:
        session.merge(
            ReplicationItem(
                job_id=job_id,
                site_id=site_id,
                name=decision.name,
                action=decision.action if decision.outcome == "apply" else "none",
                status=status,
                target_id=target_id,
                error=error,
            )
        )


def item_progress(job_id: str, site_id: str, name: str, **values: Any) -> None:
    """Update an item in place (status, bytes done and total, target id, error)."""
    with context().db.session() as session:
        session.execute(
            update(ReplicationItem)
            .where(
                ReplicationItem.job_id == job_id,
                ReplicationItem.site_id == site_id,
                ReplicationItem.name == name,
            )
            .values(**values)
        )


def drift_summary(decisions: list[Decision], unsettled: set[str]) -> dict[str, Any]:
    """A site's drift by class (only what is still there: ``unsettled``), and how many of
    the policy's resources are in sync."""
    summary: dict[str, Any] = {"missing": [], "extra": [], "changed": []}
    in_sync = 0
    for decision in decisions:
        if decision.drift is not None and decision.name in unsettled:
            summary[decision.drift].append(decision.name)
        elif decision.drift != "extra" and decision.outcome != "forget":
            in_sync += 1
    return {**summary, "in_sync": in_sync, "checked_at": utcnow().isoformat()}


def note_drift(
    policy_id: str,
    site_name: str,
    decisions: list[Decision],
    unsettled: set[str],
    note: str | None = None,
) -> None:
    """Write the site's drift into the policy's view."""
    summary = {**drift_summary(decisions, unsettled), "note": note}
    with context().db.session() as session:
        policy = session.get(ReplicationPolicy, policy_id)
        if policy is not None:
            policy.drift = {**policy.drift, site_name: summary}
            policy.audited_at = utcnow()
