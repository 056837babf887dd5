"""``cascade up --workers N`` runs the API and N workers, and restarts a worker that dies
under the same executor id; one that keeps dying is restarted after ever longer waits, up to
the cap."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from cascade.cli.embedded import EmbeddedCascade
from cascade.db import Database
from cascade.db.models import Worker
from cascade.engine import supervisor
from cascade.retry import Backoff
from tests.conftest import ADMIN_PASSWORD


def _workers(db: Database) -> dict[str, Worker]:
    with db.session() as session:
        return {w.executor_id: w for w in session.scalars(select(Worker))}


def _wait(db: Database, check: object, timeout: float = 30) -> dict[str, Worker]:
    deadline = time.monotonic() + timeout
    while True:
        found = _workers(db)
        if check(found):  # type: ignore[operator]
            return found
        assert time.monotonic() < deadline, f"timed out; workers: {found}"
        time.sleep(0.2)


def test_up_supervises_and_restarts_workers(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    cascade = EmbeddedCascade(
        data_dir, ADMIN_PASSWORD, env={"CASCADE_PASSWORD_HASH_ROUNDS": "4"}, workers=2
    )
    db = Database(f"sqlite:///{data_dir / 'cascade.db'}")
    try:
        with cascade:
            alive = _wait(db, lambda w: len(w) == 2 and all(x.state == "alive" for x in w.values()))
            victim = sorted(alive)[0]
            os.kill(alive[victim].pid, signal.SIGKILL)
            restarted = _wait(
                db,
                lambda w: w[victim].pid != alive[victim].pid and w[victim].state == "alive",
            )
            assert set(restarted) == set(alive), "the slot keeps its executor id"
        # Each left cleanly; a peer still running may already have taken over its slot.
        for worker in _workers(db).values():
            assert worker.state in ("stopped", "recovered")
            assert not Path(f"/proc/{worker.pid}").exists(), "a worker outlived cascade up"
    finally:
        db.dispose()


def test_a_worker_that_keeps_dying_is_restarted_with_growing_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(supervisor, "RESTART_BACKOFF", Backoff(first=0.1, cap=0.4))
    caplog.set_level(logging.WARNING, logger="cascade.supervisor")
    # No initialised data dir there: each worker exits at once.
    workers = supervisor.Supervisor(1, tmp_path / "nothing", tmp_path / "logs")
    workers.start()
    try:
        deadline = time.monotonic() + 60
        while len(caplog.records) < 3:
            assert time.monotonic() < deadline, f"restarts so far: {caplog.messages}"
            time.sleep(0.1)
    finally:
        workers.stop()
    waits = [float(record.args[1]) for record in caplog.records[:3]]  # type: ignore[index,arg-type]
    assert 0.1 <= waits[0] <= 0.2
    assert 0.2 <= waits[1] <= 0.3
    assert waits[2] == 0.4  # capped
    slot = workers.slots[0]
    assert slot.restarts >= 2
    assert len(slot.history) >= 3
    assert all(code != 0 for code in slot.history)
