"""The freeze barrier every strategy's checkpoint holds while it takes its consistency point
(strategies 1 and 2: one group snapshot of every member volume, ``checkpoint_steps``;
strategy 3: the one server's image, ``image_steps``): servers frozen in the plan's order,
thawed in reverse order, always.

Thawing is driven by the checkpoint row, never by the workflow's memory: each freeze step
first appends its position to ``checkpoints.frozen`` (and names this worker process in
``frozen_by``), then quiesces; the thaw step unquiesces the recorded positions, last first,
removing each once the site has thawed it (a server that was never frozen, because its
quiesce failed or never reached the site, answers "already unquiesced", which counts as
thawed). So a failed step, a failed quiesce and a worker SIGKILLed mid-freeze all end in the
same thaw: the worker that resumes the workflow (DBOS recovery) replays the recorded steps,
and the first step it runs itself, a freeze or the consistency point, sees (``hold_barrier``)
that another process froze the servers and fails, which sends it to the thaw before anything
else touches the site. The plan's ``freeze_bound_s`` is checked before each quiesce and
before the consistency point: once the first freeze is older than the bound the barrier is
given up, thawed and failed.

A barrier held past its bound by something no check can interrupt (a quiesce or a group
snapshot the site is slow to answer, a worker lost and not yet resumed) is the freeze
watchdog's (``freeze_watchdog``): it takes the barrier (``frozen_by`` becomes ``WATCHDOG``)
and thaws what is recorded. The process that froze checks it still holds the barrier after
each quiesce and after the consistency point (``still_held``): if not, it thaws the server it
just froze, or discards the snapshot or image it just took, and fails, so no consistency
point is ever kept that was not taken with every member frozen.

May import cascade.engine, cascade.db, cascade.sites, cascade.errors.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session

from cascade.db.protection_models import Checkpoint, ProtectionPlan
from cascade.engine.context import context
from cascade.engine.workflows import Job, StepFailed, StepRun, step, step_function
from cascade.errors import Conflict
from cascade.sites.driver import SiteCallFailed, SiteDriver

PROCESS = uuid.uuid4().hex  # this worker process, as the checkpoints it froze name it
WATCHDOG = "freeze-watchdog"  # ``frozen_by`` once the watchdog has taken the barrier


def now() -> datetime:
    return datetime.now(UTC)


def plan_of(checkpoint_id: str) -> tuple[Checkpoint, ProtectionPlan]:
    engine = context()
    checkpoint = engine.row(Checkpoint, checkpoint_id, f"checkpoint {checkpoint_id}")
    plan = engine.row(ProtectionPlan, checkpoint.plan_id, f"protection plan {checkpoint.plan_id}")
    return checkpoint, plan


def _taken_from_us(plan: ProtectionPlan) -> Conflict:
    return Conflict(
        f"the freeze watchdog thawed the servers once the plan's freeze bound "
        f"({plan.freeze_bound_s:g} s) had passed: the barrier is given up"
    )


def held_freezes(session: Session) -> list[tuple[Checkpoint, ProtectionPlan]]:
    """Checkpoints that record servers frozen now, each with its plan."""
    rows = session.execute(
        select(Checkpoint, ProtectionPlan)
        .join(ProtectionPlan, ProtectionPlan.id == Checkpoint.plan_id)
        .where(Checkpoint.first_freeze_at.is_not(None), cast(Checkpoint.frozen, String) != "[]")
    ).all()
    return [(checkpoint, plan) for checkpoint, plan in rows if checkpoint.frozen]


def hold_barrier(checkpoint: Checkpoint, plan: ProtectionPlan) -> None:
    """Raise unless this process froze what is frozen and the freeze is within its bound."""
    if checkpoint.frozen_by == WATCHDOG:
        raise _taken_from_us(plan)
    if checkpoint.frozen_by not in (None, PROCESS):
        raise Conflict(
            f"the worker that froze servers {checkpoint.frozen} was lost mid-freeze; "
            "the barrier is given up and they are thawed"
        )
    started = checkpoint.first_freeze_at
    if started is not None and now() - started > timedelta(seconds=plan.freeze_bound_s):
        raise Conflict(
            f"the barrier was not reached within the plan's freeze bound "
            f"({plan.freeze_bound_s:g} s): thawing"
        )


def freeze_member(
    job: Job, checkpoint_id: str, site: str, position: int, server_id: str, at_site: str
) -> None:
    """Run the freeze step of one member (raises ``StepFailed``)."""
    step(
        job,
        f"quiesce server {server_id}",
        site,
        "checkpoint.freeze",
        checkpoint_id,
        position,
        server_id,
        at_site,
    )


@step_function("checkpoint.freeze")
def freeze(_run: StepRun, checkpoint_id: str, position: int, server_id: str, at_site: str) -> None:
    """Record the position as frozen, then quiesce its server (``at_site``: its id there)."""
    with context().db.session() as session:
        checkpoint = session.get_one(Checkpoint, checkpoint_id)
        plan = session.get_one(ProtectionPlan, checkpoint.plan_id)
        hold_barrier(checkpoint, plan)
        if position not in checkpoint.frozen:
            checkpoint.frozen = [*checkpoint.frozen, position]
        checkpoint.frozen_by = PROCESS
        checkpoint.first_freeze_at = checkpoint.first_freeze_at or now()
        site_id = plan.source_site_id
    driver = context().driver(site_id)
    try:
        driver.quiesce(at_site)
    except SiteCallFailed as failure:  # named as the plan knows it
        call = f"quiesce server {server_id} (position {position})"
        raise SiteCallFailed(failure.site, call, failure.reason, failure.http_status) from failure
    try:
        still_held(checkpoint_id)
    except Conflict:  # the watchdog may have thawed before this quiesce landed
        _unquiesce(driver, at_site)
        raise


def still_held(checkpoint_id: str) -> None:
    """Raise if the watchdog took the barrier while this process was at the site."""
    checkpoint, plan = plan_of(checkpoint_id)
    if checkpoint.frozen_by != PROCESS:
        raise _taken_from_us(plan)


def _never_frozen(failure: SiteCallFailed) -> bool:
    return failure.http_status == 409 and "already running unquiesced" in failure.reason


def _unquiesce(driver: SiteDriver, at_site: str) -> None:
    """Thaw one server; one that was never frozen (or already thawed) counts as thawed."""
    try:
        driver.unquiesce(at_site)
    except SiteCallFailed as failure:
        if not _never_frozen(failure):
            raise


def thaw_recorded(checkpoint_id: str, site_id: str, servers: dict[int, str]) -> list[int]:
    """Unquiesce every position the checkpoint records as frozen, last first, removing each
    once thawed; the positions thawed. ``servers``: position -> the server's id at the site.
    A server the site cannot thaw stays recorded and is named in the ``SiteCallFailed``."""
    driver = context().driver(site_id)
    thawed: list[int] = []
    stuck: dict[int, str] = {}
    while True:
        checkpoint = context().row(Checkpoint, checkpoint_id, f"checkpoint {checkpoint_id}")
        left = [p for p in checkpoint.frozen if p not in stuck]
        if not left:
            break
        position = left[-1]
        try:
            _unquiesce(driver, servers[position])
        except SiteCallFailed as failure:
            stuck[position] = failure.message
            continue
        thawed.append(position)
        with context().db.session() as session:
            row = session.get_one(Checkpoint, checkpoint_id)
            row.frozen = [p for p in row.frozen if p != position]
            row.last_thaw_at = now()
    if stuck:
        raise SiteCallFailed(site_id, "thaw", "; ".join(stuck.values()))
    return thawed


@step_function("checkpoint.thaw")
def thaw(_run: StepRun, checkpoint_id: str, members: list[list[Any]]) -> list[int]:
    """Unquiesce every position the checkpoint records as frozen, last first; the positions
    thawed. ``members``: (position, the server's id at the site) pairs."""
    _checkpoint, plan = plan_of(checkpoint_id)
    servers = {int(position): str(at_site) for position, at_site in members}
    return thaw_recorded(checkpoint_id, plan.source_site_id, servers)


def thaw_all(job: Job, checkpoint_id: str, site: str, servers: list[list[Any]]) -> str | None:
    """Thaw what the checkpoint froze: the failure, if any."""
    try:
        step(job, "thaw, last frozen first", site, "checkpoint.thaw", checkpoint_id, servers)
    except StepFailed as failure:
        return str(failure)
    return None
