"""The protection schedule's pass, on the engine's once-per-cluster scheduler
(``schedules.extend``): every ``protection_schedule_interval`` seconds one pass, one workflow
id per tick whatever the number of workers, resumed like any workflow if its worker dies.
It accepts a checkpoint of every plan that ``schedule.due_plans`` finds due, through
``PlanService.checkpoint``, exactly as ``POST /v1/protection-plans/{id}/checkpoints`` does
(the same operation, state transition and pending checkpoint row).

Safe when passes overlap (a slow pass and the next, a pass resumed on another worker after
its first ran part-way) by two guards, both in the accept:

- each scheduled checkpoint's ``Idempotency-Key`` is derived from the plan id and the time
  it was due (``schedule.schedule_key``): passes that find the same plan due at the same time
  (both read before either's checkpoint existed) get one operation between them, whichever
  commits first; the other gets that one back. A later due time comes only from a newer
  checkpoint, so a key is never reused for another checkpoint.
- the plan's state transition in the accept transaction (``PLANS.begin``: a conditional
  update from ACTIVE or ERROR to CHECKPOINTING) refuses a second checkpoint while one runs,
  which a pass logs and skips.

A plan refused or failing to be accepted is logged and the pass goes on with the others; a
checkpoint that fails leaves its plan due again one interval after it began (its anchor).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from dbos import DBOS

from cascade.db import Database
from cascade.engine import schedules
from cascade.engine.context import context
from cascade.errors import CascadeError
from cascade.protection.plans import PlanService
from cascade.protection.schedule import due_plans, schedule_key

log = logging.getLogger("cascade.protection.schedule")
PROTECTION_SCHEDULE = "cascade-protection-schedule"
PROTECTION_SCHEDULE_WORKFLOW = "cascade.protection.schedule"


def checkpoint_due(db: Database, plans: PlanService, now: datetime) -> dict[str, int]:
    """Accept a checkpoint of each plan due ``now``; returns how many were ``accepted``
    (including one an overlapping pass had already accepted for the same due time) and
    ``refused`` (another checkpoint running, the plan gone, a database error)."""
    with db.session() as session:
        due = due_plans(session, now)
    accepted = refused = 0
    for plan in due:
        key = schedule_key(plan.plan_id, plan.due_at)
        try:
            checkpoint_id, operation = plans.checkpoint(plan.plan_id, plan.project_id, key)
        except CascadeError as error:  # a checkpoint running, the plan deleted meanwhile
            log.info("scheduled checkpoint of plan %s skipped: %s", plan.plan_id, error.message)
            refused += 1
            continue
        except Exception:  # one plan's failure never stops the others' checkpoints
            log.exception("scheduled checkpoint of plan %s could not be accepted", plan.plan_id)
            refused += 1
            continue
        log.info(
            "scheduled checkpoint %s of plan %s (due %s): operation %s",
            checkpoint_id,
            plan.plan_id,
            plan.due_at.isoformat(),
            operation.id,
        )
        accepted += 1
    return {"due": len(due), "accepted": accepted, "refused": refused}


@DBOS.workflow(name=PROTECTION_SCHEDULE_WORKFLOW)
def protection_tick(_scheduled_for: datetime, _context: Any) -> None:
    checkpoint_due_step()


@DBOS.step(name="cascade.protection.schedule.checkpoints")
def checkpoint_due_step() -> dict[str, int]:
    """One pass (its counts are the step's recorded output)."""
    services = context().services
    plans = PlanService(services.db, services.operations)
    return checkpoint_due(services.db, plans, datetime.now(UTC))


schedules.extend(
    schedules.Periodic(
        schedule_name=PROTECTION_SCHEDULE,
        workflow_fn=protection_tick,
        workflow_name=PROTECTION_SCHEDULE_WORKFLOW,
        every=lambda settings: settings.protection_schedule_interval,
    )
)
