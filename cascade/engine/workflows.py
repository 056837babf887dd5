"""How an operation runs: one durable workflow for every operation, made of recorded steps.

``run_operation`` marks the operation running, calls the handler its kind registered, and
records the outcome and the resource's new state. A handler calls ``step`` for each unit of
work: DBOS records the step's result, so a workflow resumed after a crash skips steps that
finished and re-runs only the one in flight; the step itself must be safe to re-run (look
before you create). ``fan_out`` runs one child workflow per site on the site-calls queue, in
parallel and on any worker, and gives back every site's outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dbos import DBOS, SetWorkflowID

from cascade.engine.context import context, park
from cascade.engine.operations import mark_finished, mark_running, step_finished, step_started
from cascade.engine.queue import OPERATION_WORKFLOW, SITE_CALL_WORKFLOW, SITE_CALLS_QUEUE
from cascade.engine.states import machine_for
from cascade.errors import CascadeError
from cascade.retry import Interrupted

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    operation_id: str
    kind: str
    resource_type: str
    resource_id: str
    project_id: str
    request: dict[str, Any]

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
def run_operation(operation_id: str) -> str:
    job = _begin(operation_id)
    result: dict[str, Any] | None = None
    error: str | None = None
    try:
        result = _handlers[job.kind](job)
    except StepFailed as failure:
        error = str(failure)
    _finish(job, result, error)
    return "failed" if error else "succeeded"


@DBOS.step(name="cascade.begin")
def _begin(operation_id: str) -> Job:
    operation = mark_running(context().db, operation_id, str(DBOS.executor_id))
    return Job(
        operation_id=operation.id,
        kind=operation.kind,
        resource_type=operation.resource_type,
        resource_id=operation.resource_id,
        project_id=operation.project_id,
        request=operation.request,
    )


@DBOS.step(name="cascade.finish")
def _finish(job: Job, result: dict[str, Any] | None, error: str | None) -> None:
    machine = machine_for(job.resource_type)
    with context().db.session() as session:
        if machine is not None:
            machine.finish(session, job.resource_id, job.action, job.operation_id, error)
        mark_finished(session, job.operation_id, str(DBOS.executor_id), result, error)


def step(job: Job, label: str, site: str | None, function_name: str, *args: Any) -> Any:
    """Run one recorded step of ``job``; raises StepFailed if it fails for good."""
    return _run_step(job.operation_id, label, site, function_name, args)


@DBOS.step(name="cascade.step")
def _run_step(
    operation_id: str, label: str, site: str | None, function_name: str, args: tuple[Any, ...]
) -> Any:
    db = context().db
    record = step_started(db, operation_id, label, site)
    run = StepRun(operation_id, record.attempts, record.started_at)
    try:
        value = _step_functions[function_name](run, *args)
    except Interrupted:  # the worker is stopping: no outcome, the resuming worker re-runs it
        park()
        raise
    except CascadeError as failure:  # a site call that failed, or a refusal that says why
        step_finished(db, operation_id, label, failure.message)
        raise StepFailed(failure.message) from None
    except Exception as failure:  # a bug or a lost database: fail the step, keep the reason
        log.exception("step %s of operation %s failed", label, operation_id)
        reason = f"{label}: {type(failure).__name__}: {failure}"
        step_finished(db, operation_id, label, reason)
        raise StepFailed(reason) from None
    step_finished(db, operation_id, label, None)
    return value


@DBOS.workflow(name=SITE_CALL_WORKFLOW)
def _site_call(
    operation_id: str, label: str, site: str, function_name: str, args: tuple[Any, ...]
) -> dict[str, Any]:
    try:
        return {"ok": True, "value": _run_step(operation_id, label, site, function_name, args)}
    except StepFailed as failure:
        return {"ok": False, "error": str(failure)}


def fan_out(job: Job, calls: list[SiteCall]) -> dict[str, dict[str, Any]]:
    """Run every call at its site in parallel; site -> {"ok", "value" | "error"}."""
    handles = []
    for call in calls:
        # One child per site and step function: an operation may fan out more than once.
        with SetWorkflowID(f"{job.operation_id}.{call.site}.{call.function}"):
            handles.append(
                DBOS.enqueue_workflow(
                    SITE_CALLS_QUEUE,
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
