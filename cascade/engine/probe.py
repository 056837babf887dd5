"""An engine probe: an operation that goes through the queue and a worker and runs a given
number of empty steps (none: the engine's own cost per operation; ``schemas.ProbeIn`` holds
the default), to measure the engine itself (``cascade bench engine``) or check it end to end."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cascade.db.models import Operation
from cascade.engine.operations import Operations
from cascade.engine.workflows import Job, StepRun, handler, step, step_function

KIND = "engine.probe"


def submit(operations: Operations, project_id: str, steps: int, key: str | None) -> Operation:
    """Accept a probe of ``steps`` empty steps; returns its operation."""

    def write(_session: Session, operation_id: str) -> tuple[str, str]:
        return "probe", operation_id

    return operations.accept(
        kind=KIND, project_id=project_id, request={"steps": steps}, write=write, idempotency_key=key
    )


@step_function("engine.nothing")
def nothing(_run: StepRun) -> None:
    return None


@handler(KIND)
def run(job: Job) -> None:
    steps = int(job.request.get("steps", 1))  # one: what probes ran before they took a count
    for number in range(1, steps + 1):
        step(job, "empty step" if steps == 1 else f"empty step {number}", None, "engine.nothing")
