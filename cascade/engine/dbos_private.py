"""Every use of DBOS Transact beyond its public API, in one place (DBOS is pinned ``<3.5`` for
these; check each when moving the pin).

- ``create_tables``: ``cascade init`` creates DBOS's system tables in Cascade's database
  without launching DBOS (``DBOS.launch`` would start a worker; the public ``DBOSClient`` does
  not migrate).
- ``resume_on_their_queues``: a dead worker's PENDING workflows go back to the queue and
  partition they came from. The public ``resume_workflow`` starts a workflow at once, outside
  its queue, which would break per-resource order and the queues' concurrency limits.
- ``queue_depth``: a count per queue is one aggregate query on ``workflow_status``; the
  public listing would bring every queued row back to Python to count it.
"""

from __future__ import annotations

from dbos import DBOS
from dbos._serialization import DefaultSerializer
from dbos._sys_db import SystemDatabase
from sqlalchemy import text

from cascade.db import Database

DBOS_SCHEMA = "dbos"


def schema_of(db: Database) -> str | None:
    """Where DBOS's tables live: schema ``dbos`` on PostgreSQL, the main schema on SQLite."""
    return DBOS_SCHEMA if db.dialect == "postgresql" else None


def create_tables(db: Database) -> None:
    """Create or migrate DBOS's system tables (safe to run again)."""
    system = SystemDatabase.create(
        system_database_url=db.url,
        engine_kwargs={},
        engine=db.engine,
        schema=schema_of(db),
        serializer=DefaultSerializer(),
        executor_id=None,
    )
    system.run_migrations()


def resume_on_their_queues(executor_ids: list[str]) -> int:
    """Hand the PENDING workflows of ``executor_ids`` back to their queues (inside a launched
    DBOS); returns how many."""
    return len(DBOS._recover_pending_workflows(executor_ids))


def queue_depth(db: Database, queues: tuple[str, ...]) -> dict[str, int]:
    """Queue name -> workflows waiting to be dequeued."""
    schema = schema_of(db)
    table = f"{schema}.workflow_status" if schema else "workflow_status"
    names = {f"q{i}": name for i, name in enumerate(queues)}
    query = text(
        f"SELECT queue_name, count(*) FROM {table} "  # noqa: S608 - constant table name
        f"WHERE status = 'ENQUEUED' AND queue_name IN ({', '.join(':' + k for k in names)}) "
        "GROUP BY queue_name"
    )
    counts = dict.fromkeys(queues, 0)
    with db.engine.connect() as connection:
        counts.update({name: int(count) for name, count in connection.execute(query, names)})
    return counts
