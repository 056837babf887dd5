"""Operations: accepting a request (desired state, operation record and queue entry in one
transaction, idempotent by ``Idempotency-Key``), recording its steps, and showing it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.models import Operation, OperationStep, utcnow
from cascade.engine.queue import OperationQueue, new_operation_id
from cascade.engine.schemas import OperationOut, ResourceRef, StepOut
from cascade.engine.states import StateMachine
from cascade.errors import Conflict, NotFound, present

FINISHED = ("succeeded", "failed")
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
                operation = Operation(
                    id=operation_id,
                    kind=kind,
                    resource_type=resource_type,
                    resource_id=resource_id,
                    project_id=project_id,
                    status="queued",
                    request=request,
                    request_hash=digest,
                    idempotency_key=idempotency_key,
                )
                session.add(operation)
                session.flush()
                self._queue.enqueue(session, operation_id, resource_id)
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
    ) -> str:
        """Accept ``action`` on a resource of ``machine``'s kind (after ``check``, which may
        refuse it), entering its "during" state; returns the operation id."""

        def write(session: Session, _operation_id: str) -> tuple[str, str]:
            if check is not None:
                check(session)
            machine.begin(session, resource_id, action, _operation_id)
            return machine.kind, resource_id

        operation = self.accept(
            kind=f"{machine.kind}.{action}",
            project_id=project_id,
            request={machine.kind: resource_id},
            write=write,
            idempotency_key=key,
        )
        return operation.id

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

    def get(self, operation_id: str, projects: set[str] | None) -> OperationOut:
        with self._db.session() as session:
            operation = session.get(Operation, operation_id)
            if operation is None or (projects is not None and operation.project_id not in projects):
                raise NotFound(f"Could not find operation: {operation_id}.")
            return render(operation, _steps_of(session, [operation.id]).get(operation.id, []))

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
        if projects is not None:
            query = query.where(Operation.project_id.in_(projects))
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


def mark_running(db: Database, operation_id: str, executor_id: str) -> Operation:
    """Mark the operation running (one conditional UPDATE: a late duplicate run, woken after
    its work was finished elsewhere, must not reopen it) and return it."""
    with db.session() as session:
        session.execute(
            update(Operation)
            .where(Operation.id == operation_id, Operation.status.not_in(FINISHED))
            .values(
                status="running",
                started_at=func.coalesce(Operation.started_at, utcnow()),
                executor_id=executor_id,
            )
        )
        operation = session.get(Operation, operation_id)
        if operation is None:
            raise NotFound(f"Could not find operation: {operation_id}.")
        return operation


def mark_finished(
    session: Session,
    operation_id: str,
    executor_id: str,
    result: dict[str, Any] | None,
    error: str | None,
) -> None:
    """Record the outcome, unless another run of the operation recorded one already."""
    session.execute(
        update(Operation)
        .where(Operation.id == operation_id, Operation.status.not_in(FINISHED))
        .values(
            status="failed" if error else "succeeded",
            result=result,
            error=error,
            finished_at=utcnow(),
            executor_id=executor_id,
        )
    )


def step_started(db: Database, operation_id: str, name: str, site: str | None) -> OperationStep:
    """Record a step's start; a step run again after a crash counts one more attempt."""
    with db.session() as session:
        step = session.get(OperationStep, (operation_id, name))
        if step is None:
            step = OperationStep(
                operation_id=operation_id, name=name, site=site, status="running", attempts=1
            )
            session.add(step)
        else:
            step.attempts += 1
            step.status = "running"
            step.error = None
        return step


def step_finished(db: Database, operation_id: str, name: str, error: str | None) -> None:
    with db.session() as session:
        step = present(session.get(OperationStep, (operation_id, name)), f"step {name}")
        step.status = "failed" if error else "succeeded"
        step.error = error
        step.finished_at = utcnow()
