"""The cluster at a glance: its workers and their heartbeats, what waits in the queues, the
operations in flight and the last convergence pass. One view, served by ``GET /v1/cluster``,
printed by ``cascade status`` and exported by the metrics collector.

A worker is live while its state is alive and its heartbeat is younger than
``worker_dead_after``: a worker that died with no other worker left to declare it dead still
says "alive" in its row. A pass left "running" by a worker that is gone is shown as
interrupted, or as resumed by the worker that took over its work.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import func, select

from cascade.db import Database
from cascade.db.models import Operation, Worker, utcnow
from cascade.engine.convergence import recent_passes
from cascade.engine.membership import ALIVE
from cascade.engine.schemas import (
    ClusterOut,
    ConvergencePassOut,
    InFlight,
    WorkerOut,
    WorkerState,
)
from cascade.engine.services import EngineServices

IN_FLIGHT = ("queued", "running")


def workers(db: Database, now: datetime, dead_after: float) -> list[WorkerOut]:
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
                live=row.state == ALIVE and (now - row.heartbeat_at).total_seconds() < dead_after,
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


def live_workers(services: EngineServices) -> list[WorkerOut]:
    """The workers serving the queues now."""
    dead_after = services.settings.worker_dead_after
    return [w for w in workers(services.db, utcnow(), dead_after) if w.live]


def _last_pass(db: Database, known: list[WorkerOut]) -> ConvergencePassOut | None:
    """The newest pass; one still "running" on a worker that is gone is shown as resumed by
    the live worker that took its work over, or else as interrupted."""
    last = recent_passes(db, 1)
    if not last or last[0].status != "running":
        return last[0] if last else None
    found = last[0]
    by_id = {worker.executor_id: worker for worker in known}
    runner = by_id.get(found.executor_id)
    if runner is not None and runner.live:
        return found
    heir = by_id.get(runner.recovered_by or "") if runner is not None else None
    if heir is not None and heir.live:
        return found.model_copy(
            update={"note": f"worker {found.executor_id} is gone; resumed by {heir.executor_id}"}
        )
    note = f"worker {found.executor_id} is gone and no live worker has resumed the pass yet"
    return found.model_copy(update={"status": "interrupted", "note": note})


def cluster_status(services: EngineServices) -> ClusterOut:
    now = utcnow()
    known = workers(services.db, now, services.settings.worker_dead_after)
    return ClusterOut(
        checked_at=now,
        workers=known,
        queue_depth=services.queue.depth(),
        in_flight=in_flight(services.db),
        last_convergence=_last_pass(services.db, known),
    )
