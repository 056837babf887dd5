"""The durable queue: DBOS's system tables live in Cascade's own database (schema ``dbos`` on
PostgreSQL, the same file on SQLite), so an operation record and its queue entry commit in
one transaction.

Operations go to one queue partitioned by resource id with one running job per partition:
work on a resource runs one at a time, in arrival order (operation ids sort by time), and
different resources run in parallel. Per-site calls of a fan-out go to a second, plain queue,
polled at most every ``SITE_CALLS_POLL_S`` (a site call lasts far longer than the wait, and
each queue polled costs an idle worker as much as the operations queue does).
Long transfers of bytes between sites (image copies) go to a third, whose global concurrency
(``transfer_concurrency``) bounds how many run at once in the whole cluster, whatever the
number of jobs, policies and workers; it is polled at most every ``TRANSFERS_POLL_S``, as
its calls last seconds to hours.
"""

from __future__ import annotations

import threading
import time
from secrets import token_hex
from typing import Any

from dbos import DBOSClient
from sqlalchemy.orm import Session

from cascade.config import Settings
from cascade.db import Database
from cascade.engine import dbos_private

APP_NAME = "cascade"
# Workers only dequeue work of their own version: bump when a workflow changes incompatibly.
APP_VERSION = "cascade-engine-3"
OPERATIONS_QUEUE = "cascade-operations"
SITE_CALLS_QUEUE = "cascade-site-calls"
TRANSFERS_QUEUE = "cascade-transfers"
TRANSFERS_POLL_S = 0.5
SITE_CALLS_POLL_S = 0.2
QUEUES = (OPERATIONS_QUEUE, SITE_CALLS_QUEUE, TRANSFERS_QUEUE)
OPERATION_WORKFLOW = "cascade.operation"
SITE_CALL_WORKFLOW = "cascade.site-call"
CONVERGENCE_WORKFLOW = "cascade.convergence"
KEY_ROTATION_WORKFLOW = "cascade.key-rotation"
PRUNE_WORKFLOW = "cascade.prune"

_last_id = 0
_id_lock = threading.Lock()


def new_operation_id() -> str:
    """32 hex digits that sort in creation order within a process (nanoseconds, then random)."""
    global _last_id
    with _id_lock:
        _last_id = max(_last_id + 1, time.time_ns())
        stamp = _last_id
    return f"{stamp:016x}{token_hex(8)}"


def queue_settings(settings: Settings) -> dict[str, dict[str, Any]]:
    """Queue name -> ``register_queue`` options, the same in every process."""
    poll = settings.queue_poll_interval
    return {
        OPERATIONS_QUEUE: {
            "partition_concurrency": 1,
            "worker_concurrency": settings.worker_concurrency,
            "polling_interval_sec": poll,
        },
        SITE_CALLS_QUEUE: {
            "worker_concurrency": settings.worker_concurrency,
            "polling_interval_sec": max(poll, SITE_CALLS_POLL_S),
        },
        TRANSFERS_QUEUE: {
            "global_concurrency": settings.transfer_concurrency,
            "worker_concurrency": min(settings.worker_concurrency, settings.transfer_concurrency),
            "polling_interval_sec": max(poll, TRANSFERS_POLL_S),
        },
    }


def prepare(db: Database, settings: Settings) -> None:
    """Create or migrate DBOS's tables and declare the queues (safe to run again)."""
    dbos_private.create_tables(db)
    dbos_private.analyze(db)
    client = OperationQueue(db)
    for name, options in queue_settings(settings).items():
        client.client.register_queue(name, **options)


class OperationQueue:
    """The API side of the queue: enqueue an operation's workflow inside the caller's
    transaction, and count what waits."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.client = DBOSClient(
            system_database_engine=db.engine,
            dbos_system_schema=dbos_private.schema_of(db) or dbos_private.DBOS_SCHEMA,
            application_name=APP_NAME,
            retry_connection_errors=False,  # a lost database is an error, not a hang
        )

    def enqueue(
        self, session: Session, operation_id: str, resource_id: str, inputs: tuple[Any, ...]
    ) -> None:
        """Queue the operation's workflow in the caller's transaction; ``inputs`` (kind,
        resource type and id, project, request) are its arguments after the id."""
        self.client.enqueue_in_transaction(
            session,
            {
                "workflow_name": OPERATION_WORKFLOW,
                "queue_name": OPERATIONS_QUEUE,
                "workflow_id": operation_id,
                "queue_partition_key": resource_id,
                "app_version": APP_VERSION,
            },
            operation_id,
            *inputs,
        )

    def depth(self) -> dict[str, int]:
        """Queue name -> workflows waiting to be dequeued."""
        return dbos_private.queue_depth(self._db, tuple(QUEUES))

    def pending_executors(self) -> set[str]:
        """Executor ids that hold PENDING workflows of this release."""
        return dbos_private.pending_executors(self._db, APP_VERSION)

    def close(self) -> None:
        self.client.destroy()
