"""Protection's Prometheus families, added to the engine's collector (``metrics.extend``):
each plan's RPO now (age of its newest restorable checkpoint's consistency point), each
restore's RTO, the checkpoints and restores by status, the servers frozen now per plan with
the age of the oldest freeze, and the scheduled checkpoints' operations by status (those the
schedule started, as long as the engine keeps them: ``operation_retention``). Read from the
database at each scrape; a plan or restore is labelled by id (and its plan's name), bounded
by what exists."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.models import Operation
from cascade.db.protection_models import Checkpoint, ProtectionPlan, Restore
from cascade.protection.barrier import held_freezes
from cascade.protection.schedule import SCHEDULE_KEY_PREFIX


def families(db: Database) -> list[Metric]:
    rpo = GaugeMetricFamily(
        "cascade_protection_rpo_seconds",
        "Age of the consistency point of the plan's newest restorable checkpoint",
        labels=["plan", "name"],
    )
    rto = GaugeMetricFamily(
        "cascade_restore_rto_seconds",
        "A completed restore's recovery time: start until every server ACTIVE, data verified",
        labels=["restore", "plan"],
    )
    checkpoints = GaugeMetricFamily(
        "cascade_checkpoints", "Checkpoints by status", labels=["status"]
    )
    restores = GaugeMetricFamily("cascade_restores", "Restores by status", labels=["status"])
    scheduled = GaugeMetricFamily(
        "cascade_protection_scheduled_checkpoints",
        "Checkpoint operations the protection schedule started, still kept, by status",
        labels=["status"],
    )
    frozen = GaugeMetricFamily(
        "cascade_protection_frozen_servers",
        "Servers the plan's checkpoints record as frozen now",
        labels=["plan", "name"],
    )
    freeze_age = GaugeMetricFamily(
        "cascade_protection_freeze_age_seconds",
        "How long ago the oldest freeze still held for the plan began",
        labels=["plan", "name"],
    )
    now = datetime.now(UTC)
    with db.session() as session:
        newest = session.execute(
            select(ProtectionPlan.id, ProtectionPlan.name, func.max(Checkpoint.consistency_point))
            .join(Checkpoint, Checkpoint.plan_id == ProtectionPlan.id)
            .where(Checkpoint.status == "available")
            .group_by(ProtectionPlan.id, ProtectionPlan.name)
        ).all()
        for plan_id, name, point in newest:
            if point is not None:
                rpo.add_metric([plan_id, name], (now - point).total_seconds())
        for restore_id, plan_id, seconds in session.execute(
            select(Restore.id, Restore.plan_id, Restore.rto_s).where(Restore.rto_s.is_not(None))
        ):
            rto.add_metric([restore_id, plan_id], seconds or 0.0)
        for model, family in ((Checkpoint, checkpoints), (Restore, restores)):
            for status, count in session.execute(
                select(model.status, func.count()).group_by(model.status)
            ):
                family.add_metric([status], float(count))
        for status, count in session.execute(
            select(Operation.status, func.count())
            .where(
                Operation.kind == "plan.checkpoint",
                Operation.idempotency_key.startswith(SCHEDULE_KEY_PREFIX, autoescape=True),
            )
            .group_by(Operation.status)
        ):
            scheduled.add_metric([status], float(count))
        _frozen(session, now, frozen, freeze_age)
    return [rpo, rto, checkpoints, restores, scheduled, frozen, freeze_age]


def _frozen(
    session: Session, now: datetime, frozen: GaugeMetricFamily, age: GaugeMetricFamily
) -> None:
    """Per plan, the servers its checkpoints record as frozen now and how long ago the
    oldest of those freezes began (alert on an age past the plan's freeze bound)."""
    servers: dict[tuple[str, str], int] = {}
    oldest: dict[tuple[str, str], datetime] = {}
    for checkpoint, plan in held_freezes(session):
        since = checkpoint.first_freeze_at or now
        key = (plan.id, plan.name)
        servers[key] = servers.get(key, 0) + len(checkpoint.frozen)
        oldest[key] = min(oldest.get(key, since), since)
    for key, count in servers.items():
        frozen.add_metric(list(key), float(count))
        age.add_metric(list(key), (now - oldest[key]).total_seconds())
