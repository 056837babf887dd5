"""Replication's rows as the worker writes them: Cascade's record of what it put at a site
(``ReplicaRecord``: the id there and the digest of the state it expects), a job's items
(one per site and resource, with bytes for images), what a site refused (``ReplicaFailure``,
with the audit's backoff in passes), and a site's drift in the policy's view. Shared by the
jobs (``policy_steps``, ``image_steps``) and the audit (``audit``).

The backoff: after a resource's n-th failure in a row at a site, the audit leaves it be for
the next min(2^(n-1), 64) passes (at the default 60 s interval: 1, 2, 4 ... 64 min) before it
starts a job for it again; a job started for anything else, or on demand, still tries it.
It counts in the engine's own schedule, one audit per pass, as every other repair waits."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Update, delete, func, select, update
from sqlalchemy.orm import Session

from cascade.db.models import utcnow
from cascade.db.replication_models import (
    ReplicaFailure,
    ReplicaRecord,
    ReplicationItem,
    ReplicationPolicy,
)
from cascade.engine.context import context
from cascade.replication.kinds import Decision

MAX_WAIT_PASSES = 64
ItemRow = tuple[Decision, str, str | None, str | None]  # decision, status, error, target id


def current_records(policy_id: str, site_id: str) -> dict[str, str]:
    """Name -> the digest Cascade expects at the site."""
    with context().db.session() as session:
        rows = session.execute(
            select(ReplicaRecord.name, ReplicaRecord.digest).where(
                ReplicaRecord.policy_id == policy_id, ReplicaRecord.site_id == site_id
            )
        )
        return {name: digest for name, digest in rows}


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


def _item(job_id: str, site_id: str, row: ItemRow) -> ReplicationItem:
    decision, status, error, target_id = row
    return ReplicationItem(
        job_id=job_id,
        site_id=site_id,
        name=decision.name,
        action=decision.action if decision.outcome == "apply" else "none",
        status=status,
        target_id=target_id,
        error=error,
    )


def start_items(job_id: str, site_id: str, rows: Iterable[ItemRow]) -> None:
    """A job's items at a site, all written at once in one transaction (inserted: a step
    that runs again starts its site's items over)."""
    with context().db.session() as session:
        session.execute(
            delete(ReplicationItem).where(
                ReplicationItem.job_id == job_id, ReplicationItem.site_id == site_id
            )
        )
        session.add_all(_item(job_id, site_id, row) for row in rows)


def set_item(job_id: str, site_id: str, row: ItemRow) -> None:
    """One item's outcome."""
    with context().db.session() as session:
        session.merge(_item(job_id, site_id, row))


def _item_update(job_id: str, site_id: str, name: str) -> Update:
    """An update of one item."""
    return update(ReplicationItem).where(
        ReplicationItem.job_id == job_id,
        ReplicationItem.site_id == site_id,
        ReplicationItem.name == name,
    )


def item_progress(job_id: str, site_id: str, name: str, **values: Any) -> None:
    """Update an item in place (status, bytes done and total, target id, error)."""
    with context().db.session() as session:
        session.execute(_item_update(job_id, site_id, name).values(**values))


def item_sent(job_id: str, site_id: str, name: str, count: int) -> None:
    """Add ``count`` bytes to what an item's copy has sent (one statement, so the threads of
    a copy may each add theirs)."""
    sent = func.coalesce(ReplicationItem.bytes_sent, 0) + count
    with context().db.session() as session:
        session.execute(_item_update(job_id, site_id, name).values(bytes_sent=sent))


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


def wait_passes(failures: int) -> int:
    """Passes the audit leaves a resource be after its ``failures``-th failure in a row."""
    return int(min(2 ** (failures - 1), MAX_WAIT_PASSES))


def _forget_failures(session: Session, policy_id: str, site_id: str, names: set[str]) -> None:
    if names:
        session.execute(
            delete(ReplicaFailure).where(
                ReplicaFailure.policy_id == policy_id,
                ReplicaFailure.site_id == site_id,
                ReplicaFailure.name.in_(names),
            )
        )


def note_failures(policy_id: str, site_id: str, failed: dict[str, str], settled: set[str]) -> None:
    """A job's outcome at a site: each of ``failed`` (name -> error) failed once more, and
    waits longer; each of ``settled`` was written, so its failures are forgotten."""
    with context().db.session() as session:
        _forget_failures(session, policy_id, site_id, settled)
        for name, error in failed.items():
            row = session.get(ReplicaFailure, (policy_id, site_id, name))
            count = (row.failures if row is not None else 0) + 1
            session.merge(
                ReplicaFailure(
                    policy_id=policy_id,
                    site_id=site_id,
                    name=name,
                    error=error,
                    failures=count,
                    wait_passes=wait_passes(count),
                    failed_at=utcnow(),
                )
            )


def backing_off(policy_id: str, site_id: str, failing: set[str], fine: set[str]) -> set[str]:
    """One audit pass over a site: of the names ``failing`` there still (the audit would
    start a job for them), those still waiting out their backoff, each now a pass nearer
    its next try; the failures of names ``fine`` there now are forgotten."""
    with context().db.session() as session:
        _forget_failures(session, policy_id, site_id, fine)
        rows = session.scalars(
            select(ReplicaFailure).where(
                ReplicaFailure.policy_id == policy_id,
                ReplicaFailure.site_id == site_id,
                ReplicaFailure.wait_passes > 0,
            )
        )
        waiting = set()
        for row in rows:
            if row.name in failing:
                waiting.add(row.name)
                row.wait_passes -= 1
        return waiting
