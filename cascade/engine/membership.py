"""Workers find each other through the ``workers`` table: each beats its heart there, and
each looks for others whose heart stopped, to resume their unfinished operations.

A worker is declared dead by the first live worker that sees its heartbeat older than
``worker_dead_after`` (or at once when it left cleanly); the conditional UPDATE that
declares it admits one winner, which then hands the dead executor's pending workflows back
to their queues. A worker that finds itself declared dead (it stalled, it was not dead)
stops at once, so two workers never run the same workflow for long; whatever it took from
the queue meanwhile is pending under a dead executor id, which ``orphans`` (in the worker
loop) finds and hands back too. A worker that itself stalled judges nobody until its next
beat: on SQLite a paused writer blocks everyone's heartbeat.

Each beat the database took is also a lease. No peer may declare a worker dead until
``worker_dead_after`` after its last heartbeat, so the worker may act for ``LEASE_SHARE`` of
that from the moment its last successful beat began; one that could not renew in time (cut
off from the database, or starved of CPU) stops acting before any peer may resume its work:
the worker fences itself on ``lease_left`` (see ``cascade.engine.worker``). The rest of
``worker_dead_after`` is the margin for how late the fence notices and for the clocks'
difference between machines (a heartbeat carries its writer's wall clock, which peers
compare with theirs).
"""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

from sqlalchemy import delete, select, update

from cascade.db import Database
from cascade.db.models import Worker, utcnow

ALIVE, STOPPED, RECOVERED = "alive", "stopped", "recovered"
FORGET_AFTER = timedelta(days=1)
LEASE_SHARE = 0.75  # of worker_dead_after: how long a beat lets a worker act without another


def default_executor_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Membership:
    def __init__(self, db: Database, executor_id: str, dead_after: float) -> None:
        self._db = db
        self.executor_id = executor_id
        self._dead_after = timedelta(seconds=dead_after)
        self.lease = dead_after * LEASE_SHARE  # seconds a beat lets this worker act
        self._last_beat = self._renewed = time.monotonic()
        self._stalled = False

    def join(self) -> None:
        """Enter the table as alive; forget workers gone for more than a day (their pending
        workflows, if any, are still found by the orphan pass)."""
        started = time.monotonic()
        forgotten = utcnow() - FORGET_AFTER
        with self._db.session() as session:
            session.execute(
                delete(Worker).where(Worker.state != ALIVE, Worker.heartbeat_at < forgotten)
            )
            worker = session.get(Worker, self.executor_id) or Worker(executor_id=self.executor_id)
            worker.host = socket.gethostname()
            worker.pid = os.getpid()
            worker.state = ALIVE
            worker.started_at = worker.heartbeat_at = utcnow()
            worker.recovered_by = worker.recovered_at = None
            session.add(worker)
        self._last_beat = self._renewed = started

    def beat(self) -> bool:
        """Record a heartbeat, renewing the lease from the moment it began; False if another
        worker has declared this one dead (the lease is not renewed then)."""
        now = time.monotonic()
        # After a stall of our own (paused, or blocked on the database), the others' hearts
        # may have been blocked too: judge nobody until the next beat.
        self._stalled = now - self._last_beat > self._dead_after.total_seconds() / 2
        self._last_beat = now
        with self._db.session() as session:
            done = session.execute(
                update(Worker)
                .where(Worker.executor_id == self.executor_id, Worker.state == ALIVE)
                .values(heartbeat_at=utcnow())
            )
            alive = bool(done.rowcount == 1)  # type: ignore[attr-defined]
        if alive:  # committed: peers see a heartbeat at least as new as ``now``
            self._renewed = now
        return alive

    def lease_left(self) -> float:
        """Seconds this worker may still act on its last beat the database took (<= 0: the
        lease ran out, a peer may soon declare it dead and resume its work)."""
        return self._renewed + self.lease - time.monotonic()

    def reap(self) -> list[str]:
        """Declare dead every worker whose heart stopped (or that left); returns those this
        worker won, whose workflows it must now resume."""
        if not self.may_judge():
            return []
        cutoff = utcnow() - self._dead_after
        stale = (Worker.state == STOPPED) | (
            (Worker.state == ALIVE) & (Worker.heartbeat_at < cutoff)
        )
        won = []
        with self._db.session() as session:
            candidates = session.scalars(
                select(Worker.executor_id).where(stale, Worker.executor_id != self.executor_id)
            ).all()
        for executor_id in candidates:
            with self._db.session() as session:
                claimed = session.execute(
                    update(Worker)
                    .where(Worker.executor_id == executor_id, stale)
                    .values(state=RECOVERED, recovered_by=self.executor_id, recovered_at=utcnow())
                )
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    won.append(executor_id)
        return won

    def may_judge(self) -> bool:
        """False right after a stall of this worker's own (see ``beat``)."""
        return not self._stalled

    def alive(self) -> set[str]:
        """Executor ids of the workers whose hearts beat."""
        with self._db.session() as session:
            return set(session.scalars(select(Worker.executor_id).where(Worker.state == ALIVE)))

    def leave(self) -> None:
        with self._db.session() as session:
            session.execute(
                update(Worker)
                .where(Worker.executor_id == self.executor_id, Worker.state == ALIVE)
                .values(state=STOPPED)
            )
