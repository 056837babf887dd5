"""Which workers hold PENDING workflows of this release (what a worker's heartbeat loop asks to
find orphans), read in one query on SQLite and on PostgreSQL."""

from __future__ import annotations

from sqlalchemy import text

from cascade.db import Database
from cascade.engine import dbos_private
from cascade.engine.queue import APP_VERSION, OperationQueue, new_operation_id


def _set(db: Database, workflow_id: str, status: str, executor: str, version: str) -> None:
    table = dbos_private.table(db, "workflow_status")
    with db.engine.begin() as connection:
        connection.execute(
            text(
                f"UPDATE {table} SET status = :status, executor_id = :executor, "  # noqa: S608
                "application_version = :version WHERE workflow_uuid = :id"
            ),
            {"status": status, "executor": executor, "version": version, "id": workflow_id},
        )


def test_the_holders_of_pending_workflows_of_this_release(backend_db: Database) -> None:
    queue = OperationQueue(backend_db)
    try:
        ids = []
        for _ in range(6):
            with backend_db.session() as session:
                operation_id = new_operation_id()
                inputs = ("engine.probe", "probe", operation_id, "project", {})
                queue.enqueue(session, operation_id, operation_id, inputs)
            ids.append(operation_id)
        assert queue.pending_executors() == set()  # queued, held by no worker yet
        release = APP_VERSION
        _set(backend_db, ids[0], "PENDING", "w1", release)
        _set(backend_db, ids[1], "PENDING", "w1", release)
        _set(backend_db, ids[2], "PENDING", "w2", release)
        _set(backend_db, ids[3], "PENDING", "w3", "an-older-release")  # not this release's
        _set(backend_db, ids[4], "SUCCESS", "w4", release)  # finished: holds nothing
        _set(backend_db, ids[5], "PENDING", "", release)  # no executor recorded
        assert queue.pending_executors() == {"w1", "w2"}
    finally:
        queue.close()
