"""Membership rules, on the database alone: who may declare whom dead, and when."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import update

from cascade.db.models import Worker, utcnow
from cascade.engine.membership import Membership
from cascade.services import Services


def _age(services: Services, executor_id: str, seconds: float) -> None:
    with services.db.session() as session:
        session.execute(
            update(Worker)
            .where(Worker.executor_id == executor_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )


def test_one_winner_declares_a_silent_worker_dead(services: Services) -> None:
    a, b, c = (Membership(services.db, name, dead_after=2) for name in ("a", "b", "c"))
    for member in (a, b, c):
        member.join()
    assert a.reap() == []
    assert b.reap() == []
    _age(services, "c", 5)
    assert a.reap() == ["c"]
    assert b.reap() == [], "a second worker must not claim the same dead executor"
    assert c.beat() is False, "the declared-dead worker learns it at its next beat"
    assert a.alive() == {"a", "b"}


def test_a_worker_that_stalled_judges_nobody_at_once(services: Services) -> None:
    a, b = Membership(services.db, "a", dead_after=0.4), Membership(services.db, "b", 0.4)
    a.join()
    b.join()
    time.sleep(0.5)  # a was stalled (as b was, on SQLite, behind a's write lock)
    assert a.beat() is True
    assert a.reap() == [], "a stalled worker's view of others' heartbeats is stale"
    b.beat()
    assert a.beat() is True
    assert a.reap() == []


def test_a_clean_leave_is_taken_over_at_once_and_old_rows_are_forgotten(
    services: Services,
) -> None:
    a, b = Membership(services.db, "a", 60), Membership(services.db, "b", 60)
    a.join()
    b.join()
    b.leave()
    assert a.reap() == ["b"]
    _age(services, "b", 2 * 86400)
    Membership(services.db, "c", 60).join()
    assert a.alive() == {"a", "c"}
    with services.db.session() as session:
        assert session.get(Worker, "b") is None
