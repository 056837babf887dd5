"""Replication's Prometheus families, added to the engine's collector (``metrics.extend``):
the audit's drift per policy, kind and class (missing, extra, changed; summed over the
policy's sites) and the replication jobs by status. Read from the database at each scrape."""

from __future__ import annotations

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy import func, select

from cascade.db import Database
from cascade.db.replication_models import ReplicationJob, ReplicationPolicy

DRIFT_CLASSES = ("missing", "extra", "changed")


def families(db: Database) -> list[Metric]:
    drift = GaugeMetricFamily(
        "cascade_replication_drift",
        "Resources drifted from a replication policy at its sites, by class, at the last audit",
        labels=["policy", "kind", "drift"],
    )
    jobs = GaugeMetricFamily(
        "cascade_replication_jobs", "Replication jobs by status", labels=["status"]
    )
    with db.session() as session:
        for policy_id, kind, found in session.execute(
            select(ReplicationPolicy.id, ReplicationPolicy.kind, ReplicationPolicy.drift)
        ):
            for name in DRIFT_CLASSES:
                count = sum(len(site.get(name, [])) for site in (found or {}).values())
                drift.add_metric([policy_id, kind, name], float(count))
        for status, count in session.execute(
            select(ReplicationJob.status, func.count()).group_by(ReplicationJob.status)
        ):
            jobs.add_metric([status], float(count))
    return [drift, jobs]
