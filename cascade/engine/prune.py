"""Forgetting finished work: operations that finished more than ``operation_retention``
seconds ago go, with their steps and DBOS's records of their workflows (the operation's, its
fan-out children's), and so do DBOS's records of the schedules' own finished ticks (the
engine's and those ``schedules.extend`` added). A DBOS schedule runs the prune once per
``convergence_interval`` for the whole cluster (``schedules.py``).

An operation goes only once its workflow has ended in DBOS too (an operation is marked
finished a moment before its workflow is), DBOS's records first: a prune interrupted between
the two leaves the operation for the next tick, never DBOS rows that nothing would remove.
An ``Idempotency-Key`` is remembered as long as its operation is kept. Each tick also refreshes
PostgreSQL's statistics of the queue's table (``dbos_private.analyze``).

May import ``cascade.engine`` (context, queue names, operations' states), ``cascade.db`` and
``cascade.config``.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from dbos import DBOS, DBOSClient
from sqlalchemy import delete, select

from cascade.db import Database
from cascade.db.models import Operation, OperationStep, utcnow
from cascade.engine import dbos_private
from cascade.engine.context import context
from cascade.engine.operations import FINISHED
from cascade.engine.queue import (
    CONVERGENCE_WORKFLOW,
    KEY_ROTATION_WORKFLOW,
    PRUNE_WORKFLOW,
)

log = logging.getLogger("cascade.prune")
BATCH = 500  # operations per transaction
BUDGET_S = 30.0  # a tick stops after this long; the next one goes on
ENDED = ["SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"]
TICKS = [CONVERGENCE_WORKFLOW, KEY_ROTATION_WORKFLOW, PRUNE_WORKFLOW]


def prune_ticks_of(workflow_name: str) -> None:
    """Prune the finished ticks of one more scheduled workflow (``schedules.extend``'s)."""
    if workflow_name not in TICKS:
        TICKS.append(workflow_name)


def prune(db: Database, client: DBOSClient, retention: float) -> dict[str, int]:
    """Remove what finished more than ``retention`` seconds ago; returns how many operations
    and schedule ticks went."""
    cutoff = utcnow() - timedelta(seconds=retention)
    deadline = time.monotonic() + BUDGET_S
    operations = ticks = 0
    while time.monotonic() < deadline:
        batch = _old_operations(db, client, cutoff)
        if not batch:
            break
        _forget(db, client, batch)
        operations += len(batch)
    while time.monotonic() < deadline:
        old = client.list_workflows(
            name=TICKS,
            status=ENDED,
            completed_before=cutoff.isoformat(),
            limit=BATCH,
            load_input=False,
            load_output=False,
        )
        if not old:
            break
        client.delete_workflows([workflow.workflow_id for workflow in old])
        ticks += len(old)
    return {"operations": operations, "schedule_ticks": ticks}


def _old_operations(db: Database, client: DBOSClient, cutoff: datetime) -> list[str]:
    """Up to BATCH ids of operations finished before ``cutoff`` whose workflows have ended."""
    with db.session() as session:
        ids = list(
            session.scalars(
                select(Operation.id)
                .where(Operation.status.in_(FINISHED), Operation.finished_at < cutoff)
                .order_by(Operation.id)
                .limit(BATCH)
            )
        )
    if not ids:
        return []
    running = client.list_workflows(
        workflow_ids=ids, status=["ENQUEUED", "PENDING"], load_input=False, load_output=False
    )
    still = {workflow.workflow_id for workflow in running}
    return [operation_id for operation_id in ids if operation_id not in still]


def _forget(db: Database, client: DBOSClient, ids: list[str]) -> None:
    children = client.list_workflows(parent_workflow_id=ids, load_input=False, load_output=False)
    client.delete_workflows(ids + [child.workflow_id for child in children])
    with db.session() as session:
        session.execute(delete(OperationStep).where(OperationStep.operation_id.in_(ids)))
        session.execute(delete(Operation).where(Operation.id.in_(ids)))


@DBOS.workflow(name=PRUNE_WORKFLOW)
def prune_tick(_scheduled_for: datetime, _context: Any) -> None:
    prune_step()


@DBOS.step(name="cascade.prune.step")
def prune_step() -> dict[str, int]:
    """One tick's prune (its counts are the step's recorded output)."""
    services = context().services
    pruned = prune(services.db, services.queue.client, services.settings.operation_retention)
    dbos_private.analyze(services.db)  # the queue's statistics follow its growth
    if any(pruned.values()):
        log.info("pruned %(operations)d operations, %(schedule_ticks)d schedule ticks", pruned)
    return pruned
