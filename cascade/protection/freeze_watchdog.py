"""The freeze watchdog, on the engine's once-per-cluster scheduler (``schedules.extend``):
every ``freeze_watchdog_interval`` seconds one pass thaws the servers of every checkpoint
frozen longer than its plan's ``freeze_bound_s``.

The workflow that froze them checks the bound before each quiesce and before the
consistency point (``barrier.hold_barrier``); what it cannot check is a site call that does
not come back in time (a slow group snapshot or quiesce) or a worker that died and is not
yet resumed. So a server stays frozen at most its plan's bound plus one watchdog interval
(and the site's answer to the unquiesce), as long as one worker lives.

A pass takes the barrier first (``frozen_by`` becomes ``barrier.WATCHDOG``, conditional on
who held it, so that the workflow sees it lost at its next check) and then thaws what the
checkpoint records, last first, as the workflow's own thaw does. A checkpoint whose thaw a
site refused (unreachable meanwhile) stays recorded as frozen and is thawed again at each
pass until the site answers. Passes that overlap thaw the same servers twice, which the site
answers as already thawed.

May import cascade.engine, cascade.db, cascade.protection.barrier, cascade.errors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dbos import DBOS
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cascade.db.models import Server
from cascade.db.protection_models import Checkpoint, PlanMember
from cascade.engine import schedules
from cascade.engine.context import context
from cascade.errors import CascadeError
from cascade.protection.barrier import WATCHDOG, held_freezes, thaw_recorded

log = logging.getLogger("cascade.protection.watchdog")
FREEZE_WATCHDOG = "cascade-freeze-watchdog"
FREEZE_WATCHDOG_WORKFLOW = "cascade.protection.freeze-watchdog"


@dataclass(frozen=True)
class Overdue:
    """A checkpoint frozen past its plan's bound."""

    checkpoint_id: str
    site_id: str
    held_by: str | None
    frozen_for_s: float
    bound_s: float


def overdue(session: Session, now: datetime) -> list[Overdue]:
    """Checkpoints that record frozen servers and froze the first longer ago than their
    plan's bound."""
    found = []
    for checkpoint, plan in held_freezes(session):
        frozen_for = (now - (checkpoint.first_freeze_at or now)).total_seconds()
        if frozen_for > plan.freeze_bound_s:
            found.append(
                Overdue(
                    checkpoint.id,
                    plan.source_site_id,
                    checkpoint.frozen_by,
                    frozen_for,
                    plan.freeze_bound_s,
                )
            )
    return found


def _take_barrier(session: Session, found: Overdue) -> bool:
    """Whether the watchdog holds the barrier now (taken from whoever held it when read)."""
    if found.held_by == WATCHDOG:
        return True
    taken = session.execute(
        update(Checkpoint)
        .where(Checkpoint.id == found.checkpoint_id, Checkpoint.frozen_by == found.held_by)
        .values(frozen_by=WATCHDOG)
    )
    return bool(taken.rowcount == 1)  # type: ignore[attr-defined]


def _servers_at_site(session: Session, checkpoint_id: str) -> dict[int, str]:
    """Position -> the member server's id at its site."""
    rows = session.execute(
        select(PlanMember.position, Server.site_server_id)
        .join(Server, Server.id == PlanMember.server_id)
        .join(Checkpoint, Checkpoint.plan_id == PlanMember.plan_id)
        .where(Checkpoint.id == checkpoint_id)
    ).all()
    return {position: at_site for position, at_site in rows if at_site}


def thaw_overdue(now: datetime) -> dict[str, int]:
    """One pass: how many checkpoints were ``overdue`` and how many servers were ``thawed``;
    a site that refused is logged and left to the next pass."""
    db = context().db
    with db.session() as session:
        found = overdue(session, now)
    thawed = 0
    for item in found:
        with db.session() as session:
            if not _take_barrier(session, item):
                continue  # thawed or taken meanwhile: the next pass sees what is left
            servers = _servers_at_site(session, item.checkpoint_id)
        try:
            positions = thaw_recorded(item.checkpoint_id, item.site_id, servers)
        except CascadeError as error:
            log.warning(
                "freeze watchdog: checkpoint %s stays frozen: %s", item.checkpoint_id, error
            )
            continue
        thawed += len(positions)
        log.warning(
            "freeze watchdog: thawed positions %s of checkpoint %s, frozen %.1f s (bound %g s)",
            positions,
            item.checkpoint_id,
            item.frozen_for_s,
            item.bound_s,
        )
    return {"overdue": len(found), "thawed": thawed}


@DBOS.workflow(name=FREEZE_WATCHDOG_WORKFLOW)
def freeze_watchdog_tick(_scheduled_for: datetime, _context: Any) -> None:
    thaw_overdue_step()


@DBOS.step(name="cascade.protection.freeze-watchdog.thaw")
def thaw_overdue_step() -> dict[str, int]:
    """One pass (its counts are the step's recorded output)."""
    return thaw_overdue(datetime.now(UTC))


schedules.extend(
    schedules.Periodic(
        schedule_name=FREEZE_WATCHDOG,
        workflow_fn=freeze_watchdog_tick,
        workflow_name=FREEZE_WATCHDOG_WORKFLOW,
        every=lambda settings: settings.freeze_watchdog_interval,
    )
)
