"""The periodic convergence pass: once per period for the whole cluster (a DBOS schedule
fires each tick with one workflow id, whatever the number of workers), resumed like any
workflow if its worker dies.

For every site, each resource package's checker compares what Cascade wants with what the
site has, through the driver, and repairs or reports the drift. A site that cannot be
reached is reported and the pass goes on with the others.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from dbos import DBOS
from sqlalchemy import func, select

from cascade.db import Database
from cascade.db.models import ConvergencePass, Site, utcnow
from cascade.engine.context import EngineContext, context, park
from cascade.engine.queue import CONVERGENCE_WORKFLOW
from cascade.engine.schemas import ConvergencePassOut
from cascade.errors import present
from cascade.retry import Interrupted
from cascade.sites.driver import SiteCallFailed
from cascade.sites.registry import IN_SERVICE

# (engine context, site) -> (resources checked, repairs made or reported)
Checker = Callable[[EngineContext, Site], tuple[int, list[dict[str, Any]]]]
_checkers: list[Checker] = []


def checker(function: Checker) -> Checker:
    _checkers.append(function)
    return function


def repair(kind: str, resource_id: str, site: str, drift: str, action: str) -> dict[str, Any]:
    return {
        "resource": {"type": kind, "id": resource_id},
        "site": site,
        "drift": drift,
        "action": action,
    }


@DBOS.workflow(name=CONVERGENCE_WORKFLOW)
def convergence_pass(scheduled_for: datetime, _context: Any) -> None:
    pass_id = str(DBOS.workflow_id)
    _open(pass_id, scheduled_for)
    checked, repairs = 0, []
    try:
        for site_id in _site_ids():
            site_checked, site_repairs = _check_site(site_id)
            checked += site_checked
            repairs += site_repairs
    except Exception as failure:  # recorded on the pass; the next tick tries again
        _close(pass_id, checked, repairs, f"{type(failure).__name__}: {failure}")
        return
    _close(pass_id, checked, repairs, None)


@DBOS.step(name="cascade.convergence.open")
def _open(pass_id: str, scheduled_for: datetime) -> None:
    with context().db.session() as session:
        if session.get(ConvergencePass, pass_id) is None:
            session.add(
                ConvergencePass(
                    id=pass_id,
                    scheduled_for=scheduled_for,
                    executor_id=str(DBOS.executor_id),
                    status="running",
                    checked=0,
                    repairs=[],
                )
            )


@DBOS.step(name="cascade.convergence.sites")
def _site_ids() -> list[str]:
    with context().db.session() as session:
        return list(session.scalars(select(Site.id).where(IN_SERVICE).order_by(Site.name)))


@DBOS.step(name="cascade.convergence.site")
def _check_site(site_id: str) -> tuple[int, list[dict[str, Any]]]:
    engine = context()
    with engine.db.session() as session:
        site = session.get(Site, site_id)
    if site is None:
        return 0, []
    checked, repairs = 0, []
    for check in _checkers:
        try:
            site_checked, site_repairs = check(engine, site)
        except Interrupted:  # the worker is stopping: the pass is resumed elsewhere
            park()
            raise
        except SiteCallFailed as failure:
            repairs.append(
                repair("site", site.id, site.name, failure.message, "none: retried next pass")
            )
            break
        checked += site_checked
        repairs += site_repairs
    return checked, repairs


@DBOS.step(name="cascade.convergence.close")
def _close(pass_id: str, checked: int, repairs: list[dict[str, Any]], error: str | None) -> None:
    with context().db.session() as session:
        record = present(session.get(ConvergencePass, pass_id), f"convergence pass {pass_id}")
        record.status = "failed" if error else "succeeded"
        record.error = error
        record.checked = checked
        record.repairs = repairs
        record.finished_at = utcnow()


def previous_pass_start(db: Database) -> datetime | None:
    """When the pass before the newest one (this one) began: what changed since then is new
    to this pass. Not the newest *finished* pass: a pass slower than the period overlaps the
    next, and what the overlapping one already saw would be new again to a third."""
    with db.session() as session:
        newest = select(func.max(ConvergencePass.started_at)).scalar_subquery()
        return session.scalar(
            select(func.max(ConvergencePass.started_at)).where(ConvergencePass.started_at < newest)
        )


def recent_passes(engine_db: Any, limit: int) -> list[ConvergencePassOut]:
    with engine_db.session() as session:
        rows = session.scalars(
            select(ConvergencePass).order_by(ConvergencePass.scheduled_for.desc()).limit(limit)
        )
        return [ConvergencePassOut.model_validate(row, from_attributes=True) for row in rows]
