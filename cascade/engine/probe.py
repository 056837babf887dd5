"""An engine probe: an operation that goes through the queue and a worker and runs one empty
step, to measure the engine itself (``cascade bench engine``) or check it end to end."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cascade.db.models import Operation
from cascade.engine.operations import Operations
from cascade.engine.workflows import Job, StepRun, handler, step, step_function

KIND = "engine.probe"


def submit(operations: Operations, project_id: str, key: str | None = None) -> Operation:
    """Accept a probe; returns its operation."""

    def write(_session: Session, operation_id: str) -> tuple[str, str]:
        return "probe", operation_id

    return operations.accept(
        kind=KIND, project_id=project_id, request={}, write=write, idempotency_key=key
    )


@step_function("engine.nothing")
def nothing(_run: StepRun) -> None:
    return None


@handler(KIND)
def run(job: Job) -> None:
    step(job, "empty step", None, "engine.nothing")
