"""Replication's Prometheus families, added to the engine's collector (``metrics.extend``):
the audit's drift per policy, kind and class (missing, extra, changed; summed over the
policy's sites), the resources sites refused (per policy, summed over its sites; each waits
out the audit's backoff) and the replication jobs by status. Read from the database at each
scrape."""

from __future__ import annotations

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy import func, select

from cascade.db import Database
from cascade.db.replication_models import ReplicaFailure, ReplicationJob, ReplicationPolicy

DRIFT_CLASSES = ("missing", "extra", "changed")


def families(db: Database) -> list[Metric]:
    drift = GaugeMetricFamily(
        "cascade_replication_drift",
        "Resources drifted from a replication policy at its sites, by class, at the last audit",
        labels=["policy", "kind", "drift"],
    )
    failing = GaugeMetricFamily(
        "cascade_replication_failing",
        "Resources a replication policy's sites refused to take, retried after a backoff",
        labels=["policy", "kind"],
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
        for policy_id, kind, count in session.execute(
            select(ReplicationPolicy.id, ReplicationPolicy.kind, func.count())
            .join(ReplicaFailure, ReplicaFailure.policy_id == ReplicationPolicy.id)
            .group_by(ReplicationPolicy.id, ReplicationPolicy.kind)
        ):
            failing.add_metric([policy_id, kind], float(count))
        for status, count in session.execute(
            select(ReplicationJob.status, func.count()).group_by(ReplicationJob.status)
        ):
            jobs.add_metric([status], float(count))
    return [drift, failing, jobs]
