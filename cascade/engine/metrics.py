"""The cluster's Prometheus metrics, read from the database at each scrape: the engine's
(queue, operations, workers, convergence), the identity replicas' lag, and the families the
capabilities above the engine add with ``extend`` (protection's RPO and RTO).

One collector per process sits on prometheus_client's default registry (``/metrics`` serves
it). It reads the services of the newest API app still open: ``install`` attaches an app's
services when the app is built and ``detach`` lets them go when it shuts down, so a process
that builds many apps (the tests) registers the collector once and never reads a closed one.
The operation queries are aggregates (counts by status on an indexed column, one grouped query
for the duration histogram): no row per operation comes back to Python.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import REGISTRY
from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, Float, case, extract, func, select, type_coerce

from cascade.db import Database
from cascade.db.models import Operation
from cascade.engine.cluster import cluster_status
from cascade.engine.schemas import ClusterOut
from cascade.engine.services import EngineServices
from cascade.identity import changelog
from cascade.identity.changelog import ReplicaLag

log = logging.getLogger("cascade.metrics")

# Seconds from acceptance to the end: a probe takes milliseconds, a server minutes.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


@dataclass(frozen=True)
class Durations:
    """One kind's finished operations: cumulative counts per bucket, count and sum."""

    kind: str
    buckets: tuple[int, ...]
    count: int
    total: float


def _seconds(dialect: str) -> ColumnElement[float]:
    if dialect == "postgresql":
        return type_coerce(extract("epoch", Operation.finished_at - Operation.created_at), Float)
    days = func.julianday(Operation.finished_at) - func.julianday(Operation.created_at)
    return type_coerce(days * 86400.0, Float)


def operation_durations(db: Database) -> list[Durations]:
    """Per kind, the histogram of finished operations' durations, in one query."""
    seconds = _seconds(db.dialect)
    bucket_counts = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in DURATION_BUCKETS]
    query = (
        select(Operation.kind, func.count(), func.sum(seconds), *bucket_counts)
        .where(Operation.finished_at.is_not(None))
        .group_by(Operation.kind)
        .order_by(Operation.kind)
    )
    with db.session() as session:
        return [
            Durations(
                kind=kind,
                buckets=tuple(int(value or 0) for value in buckets),
                count=int(count),
                total=float(total or 0.0),
            )
            for kind, count, total, *buckets in session.execute(query)
        ]


@dataclass(frozen=True)
class Families:
    """Every metric family the collector exports, typed, filled at each scrape."""

    queue_depth: GaugeMetricFamily
    operations: GaugeMetricFamily
    heartbeat_age: GaugeMetricFamily
    alive: GaugeMetricFamily
    durations: HistogramMetricFamily
    last_pass: GaugeMetricFamily
    replica_behind: GaugeMetricFamily
    replica_lag: GaugeMetricFamily
    replica_poll_age: GaugeMetricFamily
    up: GaugeMetricFamily

    @classmethod
    def empty(cls) -> Families:
        return cls(
            queue_depth=GaugeMetricFamily(
                "cascade_queue_depth", "Workflows waiting to start, per queue", labels=["queue"]
            ),
            operations=GaugeMetricFamily(
                "cascade_operations", "Operations in flight, by status", labels=["status"]
            ),
            heartbeat_age=GaugeMetricFamily(
                "cascade_worker_heartbeat_age_seconds",
                "Seconds since each worker's last heartbeat",
                labels=["executor_id"],
            ),
            alive=GaugeMetricFamily(
                "cascade_worker_alive",
                "1 while a worker is a live member of the cluster, else 0",
                labels=["executor_id"],
            ),
            durations=HistogramMetricFamily(
                "cascade_operation_duration_seconds",
                "Seconds from acceptance to the end of finished operations, by kind",
                labels=["kind"],
            ),
            last_pass=GaugeMetricFamily(
                "cascade_convergence_last_pass_timestamp_seconds",
                "Unix time the newest convergence pass started",
            ),
            replica_behind=GaugeMetricFamily(
                "cascade_identity_replica_behind",
                "Identity changes a replica has not applied yet",
                labels=["replica"],
            ),
            replica_lag=GaugeMetricFamily(
                "cascade_identity_replica_lag_seconds",
                "How stale a replica's identity copy may be: the age of the oldest change it "
                "has not applied (0: up to date), and at least its silence once silent",
                labels=["replica"],
            ),
            replica_poll_age=GaugeMetricFamily(
                "cascade_identity_replica_last_poll_age_seconds",
                "Seconds since a replica last polled the change log (grows while it is silent)",
                labels=["replica"],
            ),
            up=GaugeMetricFamily(
                "cascade_engine_metrics_up",
                "1 if this scrape could read the engine's metrics from the database, else 0",
            ),
        )

    def all(self) -> list[Metric]:
        return [
            self.queue_depth,
            self.operations,
            self.heartbeat_age,
            self.alive,
            self.durations,
            self.last_pass,
            self.replica_behind,
            self.replica_lag,
            self.replica_poll_age,
            self.up,
        ]

    def fill(
        self, status: ClusterOut, durations: list[Durations], replicas: list[ReplicaLag]
    ) -> None:
        for replica in replicas:
            self.replica_behind.add_metric([replica.name], replica.behind)
            self.replica_lag.add_metric([replica.name], replica.lag_s)
            self.replica_poll_age.add_metric([replica.name], replica.seen_s)
        for queue, count in sorted(status.queue_depth.items()):
            self.queue_depth.add_metric([queue], count)
        for state, count in status.in_flight.model_dump().items():
            self.operations.add_metric([state], count)
        for worker in status.workers:
            self.heartbeat_age.add_metric([worker.executor_id], worker.heartbeat_age_s)
            self.alive.add_metric([worker.executor_id], float(worker.live))
        for kind in durations:
            buckets = [
                (str(bound), float(count))  # bounds are floats: '0.05', '1.0'
                for bound, count in zip(DURATION_BUCKETS, kind.buckets, strict=True)
            ]
            buckets.append(("+Inf", float(kind.count)))
            self.durations.add_metric([kind.kind], buckets, kind.total)
        if status.last_convergence is not None:
            self.last_pass.add_metric([], status.last_convergence.started_at.timestamp())


Extra = Callable[[Database], list[Metric]]


class EngineCollector(Collector):
    """The engine's families, and those of the capabilities that ``extend`` it (read from
    the same database at each scrape)."""

    def __init__(self) -> None:
        self._sources: list[weakref.ref[EngineServices]] = []
        self._extras: list[Extra] = []
        self._lock = threading.Lock()

    def extend(self, extra: Extra) -> None:
        with self._lock:
            if extra not in self._extras:
                self._extras.append(extra)

    def attach(self, services: EngineServices) -> None:
        with self._lock:
            self._sources = [ref for ref in self._sources if ref() not in (None, services)]
            self._sources.append(weakref.ref(services))

    def detach(self, services: EngineServices) -> None:
        with self._lock:
            self._sources = [ref for ref in self._sources if ref() not in (None, services)]

    def current(self) -> EngineServices | None:
        with self._lock:
            for ref in reversed(self._sources):
                services = ref()
                if services is not None:
                    return services
        return None

    def describe(self) -> Iterator[Metric]:
        return iter(Families.empty().all())

    def collect(self) -> Iterator[Metric]:
        services = self.current()
        if services is None:
            return
        families = Families.empty()
        try:
            with services.db.session() as session:
                replicas = changelog.replicas(session)
            families.fill(cluster_status(services), operation_durations(services.db), replicas)
            extra = [metric for read in self._extras for metric in read(services.db)]
        except Exception:  # a scrape must not fail: say so in the metrics and the log
            log.exception("could not read the engine's metrics")
            families.up.add_metric([], 0.0)
            yield families.up
            return
        families.up.add_metric([], 1.0)
        yield from families.all()
        yield from extra


COLLECTOR = EngineCollector()
_registered = False
_register_lock = threading.Lock()


def install(services: EngineServices) -> None:
    """Register the collector (once per process) and read ``services`` from now on."""
    global _registered
    with _register_lock:
        if not _registered:
            REGISTRY.register(COLLECTOR)
            _registered = True
    COLLECTOR.attach(services)


def extend(extra: Extra) -> None:
    """Add a capability's families (``extra(db)``, a list of metrics) to every scrape."""
    COLLECTOR.extend(extra)


def detach(services: EngineServices) -> None:
    COLLECTOR.detach(services)
