"""A protection plan's schedule: when its next checkpoint is due, and which plans are due now.

A plan with ``checkpoint_every_s`` gets a checkpoint that many seconds after its *anchor*:
the newest checkpoint's consistency point, or that checkpoint's creation when it has none
(it failed before its snapshot, or has not reached it yet), or the plan's creation before its
first checkpoint. A manual checkpoint moves the anchor like a scheduled one; a failed one is
tried again one interval after it began, not at every pass. While a checkpoint is queued or
running (``pending``, ``running``, ``backing-up``) the plan is not due.

The anchor of the newest checkpoint is the greatest anchor of all of them: a plan runs one
checkpoint at a time, and one's consistency point precedes the next one's creation. So one
grouped statement reads it for any number of plans. The tick that accepts what is due is
``schedule_tick``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from cascade.db.protection_models import Checkpoint, ProtectionPlan
from cascade.protection.chunk_claims import RUNNING

SCHEDULABLE = ("ACTIVE", "ERROR")  # the plan states a checkpoint may begin from
SCHEDULE_KEY_PREFIX = "schedule:"  # of the Idempotency-Keys of scheduled checkpoints


@dataclass(frozen=True)
class Timing:
    """What the schedule reads of a plan's checkpoints: the newest one's anchor (none before
    the first) and whether one is queued or running."""

    anchor: datetime | None
    in_flight: bool


@dataclass(frozen=True)
class Due:
    """A plan whose scheduled checkpoint is due, and the time it was due at."""

    plan_id: str
    project_id: str
    due_at: datetime


def next_checkpoint_at(
    every_s: int | None, plan_created_at: datetime, anchor: datetime | None
) -> datetime | None:
    """When the schedule takes the next checkpoint; none without a schedule."""
    if every_s is None:
        return None
    return (anchor or plan_created_at) + timedelta(seconds=every_s)


def due_at(
    every_s: int | None, plan_created_at: datetime, timing: Timing, now: datetime
) -> datetime | None:
    """The time the plan's next checkpoint was due at, if it is due ``now`` (a schedule, none
    queued or running, its time reached); else none."""
    if timing.in_flight:
        return None
    due = next_checkpoint_at(every_s, plan_created_at, timing.anchor)
    return due if due is not None and due <= now else None


def timings(session: Session, plan_ids: Sequence[str]) -> dict[str, Timing]:
    """Per plan with checkpoints, its ``Timing``, in one statement; a plan without any is
    absent."""
    if not plan_ids:
        return {}
    anchor = func.max(func.coalesce(Checkpoint.consistency_point, Checkpoint.created_at))
    running = func.max(case((Checkpoint.status.in_(RUNNING), 1), else_=0))
    rows = session.execute(
        select(Checkpoint.plan_id, anchor, running)
        .where(Checkpoint.plan_id.in_(plan_ids))
        .group_by(Checkpoint.plan_id)
    )
    return {plan_id: Timing(point, bool(flag)) for plan_id, point, flag in rows}


def next_checkpoints(
    session: Session, plans: Sequence[ProtectionPlan]
) -> dict[str, datetime | None]:
    """Per plan, when the schedule takes its next checkpoint (none without a schedule)."""
    found = timings(session, [plan.id for plan in plans if plan.checkpoint_every_s])
    return {
        plan.id: next_checkpoint_at(
            plan.checkpoint_every_s,
            plan.created_at,
            found[plan.id].anchor if plan.id in found else None,
        )
        for plan in plans
    }


def due_plans(session: Session, now: datetime) -> list[Due]:
    """The plans whose scheduled checkpoint is due ``now``, oldest due first (two statements)."""
    plans = session.scalars(
        select(ProtectionPlan).where(
            ProtectionPlan.checkpoint_every_s.is_not(None),
            ProtectionPlan.status.in_(SCHEDULABLE),
        )
    ).all()
    found = timings(session, [plan.id for plan in plans])
    due: list[Due] = []
    for plan in plans:
        when = due_at(
            plan.checkpoint_every_s, plan.created_at, found.get(plan.id, Timing(None, False)), now
        )
        if when is not None:
            due.append(Due(plan.id, plan.project_id, when))
    return sorted(due, key=lambda d: d.due_at)


def schedule_key(plan_id: str, due: datetime) -> str:
    """The Idempotency-Key of the scheduled checkpoint due at ``due``: two passes that find
    the same plan due at the same time accept one operation between them."""
    return f"{SCHEDULE_KEY_PREFIX}{plan_id}:{due.isoformat()}"
