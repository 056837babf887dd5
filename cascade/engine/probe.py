"""An engine probe: an operation that goes through the queue and a worker and runs a given
number of empty steps (none: the engine's own cost per operation; one by default), to measure
the engine itself (``cascade bench engine``) or check it end to end."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cascade.db.models import Operation
from cascade.engine.operations import Operations
from cascade.engine.workflows import Job, StepRun, handler, step, step_function

KIND = "engine.probe"
DEFAULT_STEPS = 1


def submit(
    operations: Operations, project_id: str, steps: int = DEFAULT_STEPS, key: str | None = None
) -> Operation:
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
    # A probe accepted before probes took a step count ran one.
    steps = int(job.request.get("steps", DEFAULT_STEPS))
    for number in range(1, steps + 1):
        step(job, "empty step" if steps == 1 else f"empty step {number}", None, "engine.nothing")
