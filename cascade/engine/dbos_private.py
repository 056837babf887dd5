"""Every use of DBOS Transact beyond its public API, in one place (DBOS is pinned ``<3.5`` for
these; check each when moving the pin).

- ``create_tables``: ``cascade init`` creates DBOS's system tables in Cascade's database
  without launching DBOS (``DBOS.launch`` would start a worker; the public ``DBOSClient`` does
  not migrate).
- ``resume_on_their_queues``: a dead worker's PENDING workflows go back to the queue and
  partition they came from. The public ``resume_workflow`` starts a workflow at once, outside
  its queue, which would break per-resource order and the queues' concurrency limits.
- ``stop_dequeuing`` and ``active_workflows``: a stopping worker takes no more work and gives
  what runs a short grace, then leaves without ``DBOS.destroy`` (which waits in whole seconds,
  joins every background thread for up to 10 s each, and pulls the system database from under
  workflows still running, each then failing with a traceback). What it leaves PENDING is
  resumed by a live worker, as after a crash.
- ``queue_depth``: a count per queue is one aggregate query on ``workflow_status``; the
  public listing would bring every queued row back to Python to count it.
- ``pending_executors``: the workers holding PENDING workflows are one ``DISTINCT`` query;
  the public listing brought every PENDING row back to Python, and every worker asks at
  every heartbeat.
- ``analyze`` and ``analyze_if_stale``: PostgreSQL plans the dequeue from
  ``workflow_status``'s statistics, which a fresh database lacks until autovacuum gets to it
  (a minute or more): with 10,000 operations queued into a fresh database, one dequeue took
  42 s, and 0.1 s once the table was analysed. Workers look every few seconds (one catalog
  read) and analyse it once it changed by half its size (at least ANALYZE_AFTER rows) since
  its last analysis; each prune tick analyses it too.
"""

from __future__ import annotations

from dbos import DBOS, _dbos
from dbos._serialization import DefaultSerializer
from dbos._sys_db import SystemDatabase
from sqlalchemy import text

from cascade.db import Database

DBOS_SCHEMA = "dbos"
ANALYZE_AFTER = 500  # rows changed since the last analysis before a fresh table is analysed


def schema_of(db: Database) -> str | None:
    """Where DBOS's tables live: schema ``dbos`` on PostgreSQL, the main schema on SQLite."""
    return DBOS_SCHEMA if db.dialect == "postgresql" else None


def table(db: Database, name: str) -> str:
    """A DBOS system table's name as SQL must write it in ``db`` (``dbos.NAME`` or ``NAME``)."""
    schema = schema_of(db)
    return f"{schema}.{name}" if schema else name


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


def stop_dequeuing() -> None:
    """Stop the launched DBOS's background threads (queue polling, schedules, recovery): no
    new workflow starts here; those running go on."""
    instance = _dbos._dbos_global_instance
    if instance is not None:
        for event in instance.background_thread_stop_events:
            event.set()


def active_workflows() -> int:
    """How many workflows run in this process now."""
    instance = _dbos._dbos_global_instance
    return 0 if instance is None else len(instance._active_workflows_set.activeList())


def queue_depth(db: Database, queues: tuple[str, ...]) -> dict[str, int]:
    """Queue name -> workflows waiting to be dequeued."""
    names = {f"q{i}": name for i, name in enumerate(queues)}
    query = text(
        f"SELECT queue_name, count(*) FROM {table(db, 'workflow_status')} "  # noqa: S608 - constant table name
        f"WHERE status = 'ENQUEUED' AND queue_name IN ({', '.join(':' + k for k in names)}) "
        "GROUP BY queue_name"
    )
    counts = dict.fromkeys(queues, 0)
    with db.engine.connect() as connection:
        counts.update({name: int(count) for name, count in connection.execute(query, names)})
    return counts


def pending_executors(db: Database, app_version: str) -> set[str]:
    """Executor ids that hold PENDING workflows of ``app_version``."""
    query = text(
        f"SELECT DISTINCT executor_id FROM {table(db, 'workflow_status')} "  # noqa: S608 - constant table name
        "WHERE status = 'PENDING' AND application_version = :version"
    )
    with db.engine.connect() as connection:
        found = connection.execute(query, {"version": app_version}).scalars()
        return {executor_id for executor_id in found if executor_id}


def analyze(db: Database) -> None:
    """Refresh PostgreSQL's statistics of the queue's table (nothing to do on SQLite)."""
    if db.dialect != "postgresql":
        return
    with db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(
            text(f"ANALYZE {DBOS_SCHEMA}.workflow_status")
        )


def analyze_if_stale(db: Database) -> bool:
    """Analyse the queue's table if it changed by half its size (and at least ANALYZE_AFTER
    rows) since its last analysis; True if it did."""
    if db.dialect != "postgresql":
        return False
    query = text(
        "SELECT n_mod_since_analyze, n_live_tup FROM pg_stat_user_tables "
        "WHERE schemaname = :schema AND relname = 'workflow_status'"
    )
    with db.engine.connect() as connection:
        found = connection.execute(query, {"schema": DBOS_SCHEMA}).first()
    if found is None or found[0] < max(ANALYZE_AFTER, found[1] // 2):
        return False
    analyze(db)
    return True
