"""How an operation runs: one durable workflow for every operation, made of recorded steps.

``run_operation`` calls the handler its kind registered and records the outcome and the
resource's new state. A handler calls ``step`` for each unit of work: DBOS records the step's
result, so a workflow resumed after a crash skips steps that finished and re-runs only the one
in flight; the step itself must be safe to re-run (look before you create). Cascade's own
records (the operation running, each step's start, attempts and outcome) add one commit per
step and one for the outcome: a ``Ledger`` carries what can wait to the next of them.
``fan_out`` runs one child workflow per site on the site-calls queue, in parallel and on any
worker, and gives back every site's outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dbos import DBOS, SetWorkflowID
from sqlalchemy import Connection

from cascade.db.models import utcnow
from cascade.engine.context import context, park
from cascade.engine.operations import (
    StepOutcome,
    mark_finished,
    record_progress,
    step_started,
)
from cascade.engine.queue import OPERATION_WORKFLOW, SITE_CALL_WORKFLOW, SITE_CALLS_QUEUE
from cascade.engine.states import machine_for
from cascade.errors import CascadeError
from cascade.retry import Interrupted

log = logging.getLogger(__name__)


@dataclass
class Ledger:
    """What a running operation has still to write: "running" and finished steps' outcomes.
    They ride on its next write, which must come before anything else can see or need them:
    the next step's start (committed before that step acts), a fan-out (its children record
    their own steps) or the outcome. A worker that dies with a ledger unwritten loses nothing:
    the workflow resumed elsewhere replays its recorded steps, which fill the ledger again."""

    operation_id: str
    running: bool = True  # the operation is still to be marked running
    outcomes: list[StepOutcome] = field(default_factory=list)

    def write(self, connection: Connection) -> None:
        record_progress(
            connection,
            self.operation_id,
            str(DBOS.executor_id),
            running=self.running,
            outcomes=self.outcomes,
        )

    def written(self) -> None:
        """The transaction that wrote the ledger committed."""
        self.running = False
        self.outcomes = []

    def flush(self) -> None:
        if self.running or self.outcomes:
            with context().db.engine.begin() as connection:
                self.write(connection)
            self.written()


@dataclass(frozen=True)
class Job:
    operation_id: str
    kind: str
    resource_type: str
    resource_id: str
    project_id: str
    request: dict[str, Any]
    ledger: Ledger = field(compare=False, repr=False)

    @property
    def action(self) -> str:
        return self.kind.split(".", 1)[1]


@dataclass(frozen=True)
class StepRun:
    """What a step function learns about its own run: a step re-run after a crash has attempt > 1
    and the time its first attempt began, to tell whether that attempt reached the site."""

    operation_id: str
    attempt: int
    first_started_at: datetime


@dataclass(frozen=True)
class SiteCall:
    label: str
    site: str
    function: str  # a step function's registered name
    args: tuple[Any, ...]


class StepFailed(Exception):
    """A step failed for good; the message says which site, which call and why."""


Handler = Callable[[Job], dict[str, Any] | None]
_handlers: dict[str, Handler] = {}
_step_functions: dict[str, Callable[..., Any]] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    def register(function: Handler) -> Handler:
        _handlers[kind] = function
        return function

    return register


def step_function(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a step's body under ``name``: recorded steps name what they run, so a
    workflow resumed on another worker finds it."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        _step_functions[name] = function
        return function

    return register


@DBOS.workflow(name=OPERATION_WORKFLOW)
def run_operation(
    operation_id: str,
    kind: str,
    resource_type: str,
    resource_id: str,
    project_id: str,
    request: dict[str, Any],
) -> str:
    """The operation's inputs come with its queue entry: nothing is read back at the start,
    and "running" is written with the first step's start."""
    job = Job(
        operation_id, kind, resource_type, resource_id, project_id, request, Ledger(operation_id)
    )
    result: dict[str, Any] | None = None
    error: str | None = None
    try:
        result = _handlers[job.kind](job)
    except StepFailed as failure:
        error = str(failure)
    _finish(job, result, error)
    return "failed" if error else "succeeded"


def _finish(job: Job, result: dict[str, Any] | None, error: str | None) -> None:
    """The outcome, the resource's new state and the last steps' outcomes in one transaction.
    Not a DBOS step (whose record would be one more commit): run again after a crash, each
    of its writes is conditional and finds its work done."""
    machine = machine_for(job.resource_type)
    job.ledger.running = False  # the outcome sets started_at if no step did
    with context().db.engine.begin() as connection:
        job.ledger.write(connection)
        if machine is not None:
            machine.finish(connection, job.resource_id, job.action, job.operation_id, error)
        mark_finished(connection, job.operation_id, str(DBOS.executor_id), result, error)
    job.ledger.written()


def step(job: Job, label: str, site: str | None, function_name: str, *args: Any) -> Any:
    """Run one recorded step of ``job``; raises StepFailed if it fails for good."""
    return _recorded(job.ledger, label, site, function_name, args)


def _recorded(
    ledger: Ledger, label: str, site: str | None, function_name: str, args: tuple[Any, ...]
) -> Any:
    """The step through DBOS (run, or its recorded outcome replayed), its outcome noted in the
    ledger either way."""
    try:
        value = _run_step(ledger, label, site, function_name, args)
    except StepFailed as failure:
        ledger.outcomes.append(StepOutcome(label, str(failure), utcnow()))
        raise
    ledger.outcomes.append(StepOutcome(label, None, utcnow()))
    return value


@DBOS.step(name="cascade.step")
def _run_step(
    ledger: Ledger, label: str, site: str | None, function_name: str, args: tuple[Any, ...]
) -> Any:
    """The step's start (with what the ledger holds) is committed before it acts; its
    outcome is DBOS's record, and Cascade's rides on the operation's next write."""
    with context().db.engine.begin() as connection:
        ledger.write(connection)
        attempt, first_started_at = step_started(connection, ledger.operation_id, label, site)
    ledger.written()
    run = StepRun(ledger.operation_id, attempt, first_started_at)
    try:
        return _step_functions[function_name](run, *args)
    except Interrupted:  # the worker is stopping: no outcome, the resuming worker re-runs it
        park()
        raise
    except CascadeError as failure:  # a site call that failed, or a refusal that says why
        raise StepFailed(failure.message) from None
    except Exception as failure:  # a bug or a lost database: fail the step, keep the reason
        log.exception("step %s of operation %s failed", label, ledger.operation_id)
        raise StepFailed(f"{label}: {type(failure).__name__}: {failure}") from None


@DBOS.workflow(name=SITE_CALL_WORKFLOW)
def _site_call(
    operation_id: str, label: str, site: str, function_name: str, args: tuple[Any, ...]
) -> dict[str, Any]:
    ledger = Ledger(operation_id, running=False)
    try:
        outcome = {"ok": True, "value": _recorded(ledger, label, site, function_name, args)}
    except StepFailed as failure:
        outcome = {"ok": False, "error": str(failure)}
    ledger.flush()
    return outcome


def fan_out(
    job: Job, calls: list[SiteCall], queue: str = SITE_CALLS_QUEUE
) -> dict[str, dict[str, Any]]:
    """Run every call at its site in parallel, each a child workflow on ``queue`` (the
    site-calls queue, or the transfers queue for long copies, which bounds how many run at
    once in the cluster); site -> {"ok", "value" | "error"}."""
    job.ledger.flush()  # the operation shows running, and earlier steps done, while it waits
    handles = []
    for call in calls:
        # One child per site and step function: an operation may fan out more than once.
        with SetWorkflowID(f"{job.operation_id}.{call.site}.{call.function}"):
            handles.append(
                DBOS.enqueue_workflow(
                    queue,
                    _site_call,
                    job.operation_id,
                    call.label,
                    call.site,
                    call.function,
                    call.args,
                )
            )
    # Looked for as often as the queue is (DBOS's default, a second, was most of a fan-out).
    poll = context().settings.queue_poll_interval
    return {
        call.site: handle.get_result(polling_interval_sec=poll)
        for call, handle in zip(calls, handles, strict=True)
    }


def at_sites(
    job: Job, sites: list[tuple[str, str]], verb: str, function_name: str, key: str
) -> dict[str, dict[str, Any]]:
    """Run ``function_name(key, site id)`` at each of ``sites`` ((id, name) pairs) in
    parallel, each step labelled "{verb} at {site name}"; site name -> outcome."""
    calls = [
        SiteCall(f"{verb} at {name}", name, function_name, (key, site_id))
        for site_id, name in sites
    ]
    return fan_out(job, calls)


def require_all(outcomes: dict[str, dict[str, Any]]) -> None:
    """Raise StepFailed naming every site that failed, if any did."""
    failed = {site: outcome["error"] for site, outcome in outcomes.items() if not outcome["ok"]}
    if failed:
        detail = "; ".join(failed[site] for site in sorted(failed))
        raise StepFailed(f"{len(failed)} of {len(outcomes)} sites failed: {detail}")
