"""The cluster's periodic work on DBOS schedules: each schedule fires once per tick for the
whole cluster (one workflow id per tick, whatever the number of workers) and is resumed like
any workflow if its worker dies.

- Convergence (``convergence.py``) every ``convergence_interval``.
- The prune of finished operations older than ``operation_retention`` (``prune.py``) on the
  same period.
- Key rotation at the master when ``identity_rotate_every`` is set: a tick checks whether the
  primary key is due (``every`` seconds after its promotion) and if so rotates, waiting for
  the sites as ``cascade identity rotate-keys`` does. A rotation a site blocks is logged with
  that site and tried again at a later tick; the tick runs on a worker that holds the master's
  key repository (its data dir), and says so in its error when it does not.
- The schedules the capabilities above the engine add with ``extend`` (a ``Periodic``: the
  protection schedule's checkpoints), each every so many seconds its settings say, or
  removed when they say 0; DBOS's records of their finished ticks are pruned like the
  engine's own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dbos import DBOS

from cascade.config import Settings, cron_schedule
from cascade.engine import convergence, prune
from cascade.engine.context import context
from cascade.engine.queue import KEY_ROTATION_WORKFLOW
from cascade.errors import Conflict, Unavailable
from cascade.identity.rotation import due_in

log = logging.getLogger("cascade.identity.rotation")
CONVERGENCE_SCHEDULE = "cascade-convergence"
KEY_ROTATION_SCHEDULE = "cascade-key-rotation"
PRUNE_SCHEDULE = "cascade-prune"
WAIT_FOR_SITES_S = 60.0
_TICKS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)  # seconds that divide a minute


@dataclass(frozen=True)
class Periodic:
    """A schedule a capability above the engine adds: ``workflow_fn`` (a DBOS workflow,
    registered under ``workflow_name``, taking the scheduled time and DBOS's context) every
    ``every(settings)`` seconds (dividing a minute or, in whole minutes, an hour; 0: none)."""

    schedule_name: str
    workflow_fn: Callable[[datetime, Any], None]
    workflow_name: str
    every: Callable[[Settings], int]


_extra: dict[str, Periodic] = {}


def extend(periodic: Periodic) -> None:
    """Add ``periodic`` to the schedules ``apply`` declares (when imported, before launch)."""
    _extra[periodic.schedule_name] = periodic
    prune.prune_ticks_of(periodic.workflow_name)


def apply(settings: Settings) -> None:
    """Declare the schedules these settings ask for (the same in every worker)."""
    schedules: list[Any] = [
        {
            "schedule_name": CONVERGENCE_SCHEDULE,
            "workflow_fn": convergence.convergence_pass,
            "schedule": cron_schedule(settings.convergence_interval),
        },
        {
            "schedule_name": PRUNE_SCHEDULE,
            "workflow_fn": prune.prune_tick,
            "schedule": cron_schedule(settings.convergence_interval),
        },
    ]
    every = settings.identity_rotate_every
    if every:
        tick = max(t for t in _TICKS if t <= every)
        schedules.append(
            {
                "schedule_name": KEY_ROTATION_SCHEDULE,
                "workflow_fn": key_rotation_tick,
                "schedule": cron_schedule(tick),
            }
        )
    elif DBOS.get_schedule(KEY_ROTATION_SCHEDULE) is not None:
        DBOS.delete_schedule(KEY_ROTATION_SCHEDULE)
    for periodic in _extra.values():
        seconds = periodic.every(settings)
        if seconds:
            schedules.append(
                {
                    "schedule_name": periodic.schedule_name,
                    "workflow_fn": periodic.workflow_fn,
                    "schedule": cron_schedule(seconds),
                }
            )
        elif DBOS.get_schedule(periodic.schedule_name) is not None:
            DBOS.delete_schedule(periodic.schedule_name)
    DBOS.apply_schedules(schedules)


@DBOS.workflow(name=KEY_ROTATION_WORKFLOW)
def key_rotation_tick(_scheduled_for: datetime, _context: Any) -> None:
    rotate_if_due()


@DBOS.step(name="cascade.key-rotation.rotate")
def rotate_if_due() -> str:
    """Rotate if the primary key is due; returns what happened (the step's recorded output)."""
    services = context().services
    settings = services.settings
    if not settings.key_repository.exists():
        raise Unavailable(
            f"this worker does not hold the master's key repository ({settings.key_repository})"
        )
    every = settings.identity_rotate_every
    if due_in(services.keys, every) > 0:
        return "not due"
    try:
        report = services.key_rotation().rotate(min(WAIT_FOR_SITES_S, every))
    except Conflict as error:  # another rotation running, or a key still too young
        log.info("scheduled key rotation skipped: %s", error.message)
        return f"skipped: {error.message}"
    if report.promoted:
        log.info("scheduled key rotation: promoted key %d", report.primary)
        return f"promoted key {report.primary}"
    missing = ", ".join(site.name for site in report.missing)
    log.warning("scheduled key rotation blocked: %s do not hold the new keys", missing)
    return f"blocked by {missing}"
