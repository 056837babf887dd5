"""Membership rules, on the database alone: who may declare whom dead, and when; and the
lease a beat gives, on which a worker fences itself."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError

from cascade.db import Database
from cascade.db.models import Worker, utcnow
from cascade.engine.membership import LEASE_SHARE, Membership
from cascade.engine.worker import FencedStop, end_idle_transactions
from cascade.retry import Backoff, Interrupted, until_deadline
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


def test_a_lease_runs_out_before_any_peer_may_declare_the_worker_dead(services: Services) -> None:
    a, b = Membership(services.db, "a", dead_after=4), Membership(services.db, "b", 4)
    a.join()
    b.join()
    stop = FencedStop(a)
    assert 0 < a.lease_left() <= 4 * LEASE_SHARE < 4
    assert not stop.is_set()
    while a.lease_left() > 0:
        time.sleep(0.05)
    assert stop.is_set(), "the steps must see the lease run out before the fence ends them"
    attempts: list[float] = []
    with pytest.raises(Interrupted):
        until_deadline(Backoff(0.1, 0.1), 10, lambda _e: True, lambda: attempts.append(1), stop)
    assert attempts == [], "a site call was attempted after the lease ran out"
    assert b.reap() == [], "a peer may declare the worker dead only after its lease ran out"
    assert a.beat() is True
    assert a.lease_left() > 0
    assert not stop.is_set()


def test_a_worker_declared_dead_gets_no_new_lease(services: Services) -> None:
    a, b = Membership(services.db, "a", dead_after=0.4), Membership(services.db, "b", 0.4)
    a.join()
    b.join()
    _age(services, "a", 5)
    assert b.reap() == ["a"]
    assert a.beat() is False
    time.sleep(0.4)
    assert a.lease_left() <= 0


CHILD = """
import os, socket, sys
from cascade.engine.worker import reset_sockets
connection = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
connection.recv(1)
reset_sockets()
os._exit(4)
"""


def test_a_fenced_process_resets_its_connections_instead_of_closing_them() -> None:
    """What a fenced worker still had to send dies with it: its peer sees a reset, where a
    plain exit would have sent the rest and then closed in order."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(port)])
        try:
            listener.settimeout(60)
            connection, _ = listener.accept()
            with connection:
                connection.sendall(b"g")
                assert child.wait(timeout=60) == 4
                connection.settimeout(30)
                with pytest.raises(ConnectionResetError):
                    connection.recv(1)
        finally:
            child.kill()
            child.wait()


def _pause_inside_a_transaction(db: Database, seconds: float) -> None:
    with db.session() as session:
        session.execute(text("SELECT 1"))
        time.sleep(seconds)
        session.execute(text("SELECT 1"))


@pytest.mark.postgres
def test_a_worker_session_left_idle_in_a_transaction_is_ended(postgres_url: str) -> None:
    """A worker cut off mid-transaction must not hold its row locks until the link returns."""
    db = Database(postgres_url)
    try:
        end_idle_transactions(db, 0.5)
        with pytest.raises(DBAPIError, match="idle-in-transaction timeout"):
            _pause_inside_a_transaction(db, 2)
        with db.session() as session:  # the pool replaces the ended connection
            assert session.scalar(text("SELECT 1")) == 1
    finally:
        db.dispose()
