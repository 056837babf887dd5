"""Protection's Prometheus families, added to the engine's collector (``metrics.extend``):
each plan's RPO now (age of its newest restorable checkpoint's consistency point), each
restore's RTO, and the checkpoints and restores by status. Read from the database at each
scrape; a plan or restore is labelled by id (and its plan's name), bounded by what exists."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy import func, select

from cascade.db import Database
from cascade.db.protection_models import Checkpoint, ProtectionPlan, Restore


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
    return [rpo, rto, checkpoints, restores]
