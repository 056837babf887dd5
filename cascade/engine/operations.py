"""Operations: accepting a request (desired state, operation record and queue entry in one
transaction, idempotent by ``Idempotency-Key``; the queue entry carries what the worker needs
to run it, so the worker does not read the row back), recording its progress and steps, and
showing it.

May import ``cascade.engine.queue``, ``states``, ``schemas``, ``cascade.db`` and
``cascade.errors``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import Any, cast

from sqlalchemy import BindParameter, Connection, Table, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from cascade.db import Database
from cascade.db.models import Operation, OperationStep, UTCDateTime, utcnow
from cascade.engine.queue import OperationQueue, new_operation_id
from cascade.engine.schemas import OperationOut, ResourceRef, StepOut
from cascade.engine.states import StateMachine
from cascade.errors import Conflict, NotFound
from cascade.identity.policy import seen_by, sees

OPERATIONS = cast(Table, Operation.__table__)
STEPS = cast(Table, OperationStep.__table__)

FINISHED = ("succeeded", "failed")
_NEW_OPERATION = insert(OPERATIONS)
# Writes the desired state for a new operation; returns (resource type, resource id).
DesiredWrite = Callable[[Session, str], tuple[str, str]]


def request_hash(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


class Operations:
    def __init__(self, db: Database, queue: OperationQueue) -> None:
        self._db = db
        self._queue = queue

    def accept(
        self,
        *,
        kind: str,
        project_id: str,
        request: dict[str, Any],
        write: DesiredWrite,
        idempotency_key: str | None = None,
    ) -> Operation:
        """Write the desired state (``write``) and enqueue the operation, all in one
        transaction. A request that repeats an earlier one's ``Idempotency-Key`` gets that
        operation back, run once."""
        digest = request_hash({"kind": kind, **request})
        if idempotency_key is not None:
            earlier = self._earlier(project_id, idempotency_key, digest)
            if earlier is not None:
                return earlier
        try:
            with self._db.session() as session:
                operation_id = new_operation_id()
                resource_type, resource_id = write(session, operation_id)
                row = {
                    "id": operation_id,
                    "kind": kind,
                    "resource_type": resource_type,
                    "resource_id": resource_id,
                    "project_id": project_id,
                    "status": "queued",
                    "request": request,
                    "request_hash": digest,
                    "idempotency_key": idempotency_key,
                    "created_at": utcnow(),
                }
                # A Core insert, not the ORM's unit of work (a fifth of an accept's CPU): the
                # returned Operation is not attached to the session, and nothing reads it back.
                session.connection().execute(_NEW_OPERATION, row)
                operation = Operation(**row)
                inputs = (kind, resource_type, resource_id, project_id, request)
                self._queue.enqueue(session, operation_id, resource_id, inputs)
                return operation
        except IntegrityError:
            if idempotency_key is None:
                raise
            earlier = self._earlier(project_id, idempotency_key, digest)
            if earlier is None:
                raise
            return earlier

    def act(
        self,
        machine: StateMachine,
        resource_id: str,
        action: str,
        project_id: str,
        key: str | None,
        check: Callable[[Session], None] | None = None,
    ) -> Operation:
        """Accept ``action`` on a resource of ``machine``'s kind (after ``check``, which may
        refuse it), entering its "during" state; returns its operation."""

        def write(session: Session, _operation_id: str) -> tuple[str, str]:
            if check is not None:
                check(session)
            machine.begin(session, resource_id, action, _operation_id)
            return machine.kind, resource_id

        return self.accept(
            kind=f"{machine.kind}.{action}",
            project_id=project_id,
            request={machine.kind: resource_id},
            write=write,
            idempotency_key=key,
        )

    def _earlier(self, project_id: str, key: str, digest: str) -> Operation | None:
        with self._db.session() as session:
            found = session.scalar(
                select(Operation).where(
                    Operation.project_id == project_id, Operation.idempotency_key == key
                )
            )
        if found is not None and found.request_hash != digest:
            raise Conflict(
                f"Idempotency-Key {key!r} was used for a different request "
                f"(operation {found.id}); use a new key."
            )
        return found

    def shown(self, operation: Operation) -> OperationOut:
        """What a route that accepted ``operation`` answers, without reading it back: as
        accepted (queued, no step begun yet); one an ``Idempotency-Key`` found that has
        started since, as it is now."""
        if operation.status == "queued":
            return render(operation, [])
        return self.get(operation.id, None)

    def get(self, operation_id: str, projects: set[str] | None) -> OperationOut:
        """One operation with its steps, read in one statement."""
        query = (
            select(Operation, OperationStep)
            .outerjoin(OperationStep, OperationStep.operation_id == Operation.id)
            .where(Operation.id == operation_id)
            .order_by(OperationStep.started_at, OperationStep.name)
        )
        with self._db.session() as session:
            rows = session.execute(query).all()
        if not rows or not sees(projects, rows[0][0].project_id):
            raise NotFound(f"Could not find operation: {operation_id}.")
        return render(rows[0][0], [step for _, step in rows if step is not None])

    def list(
        self,
        projects: set[str] | None,
        *,
        status: str | None = None,
        kind: str | None = None,
        resource_id: str | None = None,
        limit: int = 100,
    ) -> list[OperationOut]:
        query = select(Operation).order_by(Operation.id.desc()).limit(limit)
        query = seen_by(query, Operation.project_id, projects)
        if status is not None:
            query = query.where(Operation.status == status)
        if kind is not None:
            query = query.where(Operation.kind == kind)
        if resource_id is not None:
            query = query.where(Operation.resource_id == resource_id)
        with self._db.session() as session:
            operations = list(session.scalars(query))
            steps = _steps_of(session, [operation.id for operation in operations])
            return [render(operation, steps.get(operation.id, [])) for operation in operations]


def _steps_of(session: Session, operation_ids: list[str]) -> dict[str, list[OperationStep]]:
    """Steps of several operations in one query, each operation's in the order they began."""
    found: dict[str, list[OperationStep]] = {}
    if not operation_ids:
        return found
    rows = session.scalars(
        select(OperationStep)
        .where(OperationStep.operation_id.in_(operation_ids))
        .order_by(OperationStep.started_at, OperationStep.name)
    )
    for step in rows:
        found.setdefault(step.operation_id, []).append(step)
    return found


def render(operation: Operation, steps: list[OperationStep]) -> OperationOut:
    sites = {step.site: step.status for step in steps if step.site is not None}
    duration = (
        (operation.finished_at - operation.created_at).total_seconds()
        if operation.finished_at
        else None
    )
    return OperationOut(
        id=operation.id,
        kind=operation.kind,
        resource=ResourceRef(type=operation.resource_type, id=operation.resource_id),
        project_id=operation.project_id,
        status=operation.status,
        error=operation.error,
        result=operation.result,
        created_at=operation.created_at,
        started_at=operation.started_at,
        finished_at=operation.finished_at,
        duration_s=duration,
        executor_id=operation.executor_id,
        sites=sites,
        steps=[
            StepOut(
                name=step.name,
                site=step.site,
                status=step.status,
                attempts=step.attempts,
                error=step.error,
                started_at=step.started_at,
                finished_at=step.finished_at,
            )
            for step in steps
        ],
    )


# -- the worker's records ---------------------------------------------------------------------
# A worker writes an operation's records in as few transactions as its guarantees allow:
# "running" and a finished step's outcome ride on the next step's start (which must be
# committed before the step acts) or on the outcome (see ``workflows.Ledger``). Its statements
# are built once, with named parameters, and run on a plain connection: building a Core
# statement anew, and an ORM session's handling of it, cost more of a worker's CPU than
# PostgreSQL's answer does.


@dataclass(frozen=True)
class StepOutcome:
    name: str
    error: str | None
    finished_at: datetime


def _at(name: str) -> BindParameter[Any]:
    """A timestamp parameter, bound as the UTC columns bind theirs."""
    return bindparam(name, type_=UTCDateTime())


# The operation's row unless it finished (a late duplicate run must not reopen or rewrite it),
# and its start: the first write's time, kept by every later one.
_UNFINISHED = update(OPERATIONS).where(
    OPERATIONS.c.id == bindparam("op"), OPERATIONS.c.status.not_in(FINISHED)
)
_STARTED_AT = func.coalesce(OPERATIONS.c.started_at, _at("now"))
_MARK_RUNNING = _UNFINISHED.values(
    status="running", started_at=_STARTED_AT, executor_id=bindparam("executor")
)
_STEP_FINISHED = (
    update(STEPS)
    .where(
        STEPS.c.operation_id == bindparam("op"),
        STEPS.c.name == bindparam("step"),
        STEPS.c.status == "running",
    )
    .values(status=bindparam("outcome"), error=bindparam("reason"), finished_at=_at("at"))
)
_MARK_FINISHED = _UNFINISHED.values(
    status=bindparam("outcome"),
    result=bindparam("value", type_=OPERATIONS.c.result.type),
    error=bindparam("reason"),
    started_at=_STARTED_AT,
    finished_at=_at("now"),
    executor_id=bindparam("executor"),
)


def _step_started_on(dialect: ModuleType) -> ReturningInsert[Any]:
    started = dialect.insert(STEPS).values(
        operation_id=bindparam("op"),
        name=bindparam("step"),
        site=bindparam("where"),
        status="running",
        attempts=1,
        started_at=_at("now"),
    )
    return cast(
        ReturningInsert[Any],
        started.on_conflict_do_update(
            index_elements=[STEPS.c.operation_id, STEPS.c.name],
            set_={"attempts": STEPS.c.attempts + 1, "status": "running", "error": None},
        ).returning(STEPS.c.attempts, STEPS.c.started_at),
    )


_STEP_STARTED = {"postgresql": _step_started_on(postgresql), "sqlite": _step_started_on(sqlite)}


def record_progress(
    connection: Connection,
    operation_id: str,
    executor_id: str,
    *,
    running: bool,
    outcomes: list[StepOutcome],
) -> None:
    """Mark the operation running (unless it finished: a late duplicate run must not reopen
    it) and record finished steps' outcomes (unless recorded already)."""
    if running:
        connection.execute(
            _MARK_RUNNING, {"op": operation_id, "now": utcnow(), "executor": executor_id}
        )
    if outcomes:
        connection.execute(
            _STEP_FINISHED,
            [
                {
                    "op": operation_id,
                    "step": outcome.name,
                    "outcome": "failed" if outcome.error else "succeeded",
                    "reason": outcome.error,
                    "at": outcome.finished_at,
                }
                for outcome in outcomes
            ],
        )


def mark_finished(
    connection: Connection,
    operation_id: str,
    executor_id: str,
    result: dict[str, Any] | None,
    error: str | None,
) -> None:
    """Record the outcome, unless another run of the operation recorded one already."""
    connection.execute(
        _MARK_FINISHED,
        {
            "op": operation_id,
            "outcome": "failed" if error else "succeeded",
            "value": result,
            "reason": error,
            "now": utcnow(),
            "executor": executor_id,
        },
    )


def step_started(
    connection: Connection, operation_id: str, name: str, site: str | None
) -> tuple[int, datetime]:
    """Record a step's start in one statement; a step run again after a crash counts one more
    attempt. Returns (attempt, when its first attempt began)."""
    statement = _STEP_STARTED[connection.dialect.name]
    parameters = {"op": operation_id, "step": name, "where": site, "now": utcnow()}
    row = connection.execute(statement, parameters).one()
    return int(row.attempts), row.started_at
