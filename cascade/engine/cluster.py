"""The cluster at a glance: its workers and their heartbeats, what waits in the queues, the
operations in flight and the last convergence pass. One view, served by ``GET /v1/cluster``,
printed by ``cascade status`` and exported by the metrics collector.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import func, select

from cascade.db import Database
from cascade.db.models import Operation, Worker, utcnow
from cascade.engine.convergence import recent_passes
from cascade.engine.schemas import ClusterOut, InFlight, WorkerOut, WorkerState
from cascade.engine.services import EngineServices

IN_FLIGHT = ("queued", "running")


def workers(db: Database, now: datetime) -> list[WorkerOut]:
    """Every worker the cluster has known, alive ones first, with its heartbeat's age."""
    with db.session() as session:
        rows = session.scalars(select(Worker).order_by(Worker.state, Worker.executor_id)).all()
        return [
            WorkerOut(
                executor_id=row.executor_id,
                host=row.host,
                pid=row.pid,
                state=cast(WorkerState, row.state),  # validated: membership writes only these
                started_at=row.started_at,
                heartbeat_at=row.heartbeat_at,
                heartbeat_age_s=round((now - row.heartbeat_at).total_seconds(), 3),
                recovered_by=row.recovered_by,
                recovered_at=row.recovered_at,
            )
            for row in rows
        ]


def in_flight(db: Database) -> InFlight:
    """Operations queued and running: one aggregate query on the indexed status column."""
    counts = dict.fromkeys(IN_FLIGHT, 0)
    with db.session() as session:
        rows = session.execute(
            select(Operation.status, func.count())
            .where(Operation.status.in_(IN_FLIGHT))
            .group_by(Operation.status)
        )
        for status, count in rows:
            counts[status] = int(count)
    return InFlight(queued=counts["queued"], running=counts["running"])


def cluster_status(services: EngineServices) -> ClusterOut:
    now = utcnow()
    last = recent_passes(services.db, 1)
    return ClusterOut(
        checked_at=now,
        workers=workers(services.db, now),
        queue_depth=services.queue.depth(),
        in_flight=in_flight(services.db),
        last_convergence=last[0] if last else None,
    )
