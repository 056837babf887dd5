"""``cascade up --workers N`` runs the API and N workers, and restarts a worker that dies
under the same executor id."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from sqlalchemy import select

from cascade.cli.embedded import EmbeddedCascade
from cascade.db import Database
from cascade.db.models import Worker
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
