"""JSON shapes of the engine's resources: operations, their steps, convergence passes and
the cluster (workers, queues, work in flight)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

OperationStatus = Literal["queued", "running", "succeeded", "failed"]


class StepOut(BaseModel):
    name: str
    site: str | None = Field(description="The site this step calls, if any")
    status: Literal["running", "succeeded", "failed"]
    attempts: int = Field(description="Runs of this step; more than one after a worker crash")
    error: str | None
    started_at: datetime
    finished_at: datetime | None


class ResourceRef(BaseModel):
    type: str
    id: str


class OperationOut(BaseModel):
    id: str = Field(description="Also the id of the durable workflow that runs it")
    kind: str = Field(examples=["server.create"])
    resource: ResourceRef
    project_id: str
    status: OperationStatus
    error: str | None
    result: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None = Field(description="From acceptance to the end, once finished")
    executor_id: str | None = Field(description="The worker that last ran it")
    sites: dict[str, str] = Field(description="Per site: the status of its last step there")
    steps: list[StepOut]


class OperationEnvelope(BaseModel):
    operation: OperationOut


class OperationList(BaseModel):
    operations: list[OperationOut]


class ProbeIn(BaseModel):
    """What a probe runs: none of it reaches a site."""

    model_config = {"extra": "forbid"}

    steps: int = Field(
        1,
        ge=0,
        le=100,
        description="Empty recorded steps to run (0: the engine's own cost per operation only)",
    )


class RepairOut(BaseModel):
    resource: ResourceRef
    site: str
    drift: str = Field(description="What differed between Cascade and the site")
    action: str = Field(description="What the pass did about it")


class ConvergencePassOut(BaseModel):
    id: str
    scheduled_for: datetime
    executor_id: str = Field(description="The worker that ran the pass")
    status: Literal["running", "interrupted", "succeeded", "failed"] = Field(
        description="interrupted: it was running on a worker that is gone and no live worker "
        "has resumed it yet (see note)"
    )
    note: str | None = Field(
        None, description="For a pass whose worker is gone: whether and by whom it was resumed"
    )
    checked: int = Field(description="Resources compared with their site")
    repairs: list[RepairOut]
    error: str | None = Field(description="Why the pass stopped early, if it did")
    started_at: datetime
    finished_at: datetime | None


class ConvergenceList(BaseModel):
    passes: list[ConvergencePassOut]


WorkerState = Literal["alive", "stopped", "recovered"]


class WorkerOut(BaseModel):
    executor_id: str
    host: str
    pid: int
    state: WorkerState = Field(
        description="alive: beating; stopped: left cleanly; recovered: declared dead, its "
        "unfinished work resumed by another worker"
    )
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age_s: float = Field(description="Seconds since its last heartbeat")
    live: bool = Field(
        description="alive and beating: its last heartbeat is younger than worker_dead_after "
        "(an alive worker silent for longer is dead, not yet declared so)"
    )
    recovered_by: str | None = Field(description="The worker that resumed its work, if any")
    recovered_at: datetime | None


class InFlight(BaseModel):
    queued: int = Field(description="Operations accepted and not yet started")
    running: int = Field(description="Operations a worker is running")


class ClusterOut(BaseModel):
    checked_at: datetime = Field(description="When this view was taken")
    workers: list[WorkerOut]
    queue_depth: dict[str, int] = Field(description="Per queue: workflows waiting to start")
    in_flight: InFlight
    last_convergence: ConvergencePassOut | None = Field(
        description="The newest convergence pass, if any ran yet"
    )
