"""Request and response bodies of ``/v1/protection-plans`` and ``/v1/checkpoints``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cascade.engine.schemas import OperationOut


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    server: str = Field(min_length=1, max_length=64, description="A server id of the project.")
    volumes: list[str] | None = Field(
        None,
        max_length=64,
        description="Its volume ids at its site; omitted: the volumes attached to it there.",
    )


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")
    members: list[MemberIn] = Field(
        min_length=1, max_length=64, description="The servers, in the order they are frozen."
    )
    target_site: str = Field(min_length=1, max_length=255, description="Site name or id.")
    strategy: Literal["group_snapshot"] = "group_snapshot"
    freeze_bound_s: float = Field(
        30.0, gt=0, le=600, description="The longest any member may stay frozen (seconds)."
    )
    retention: int = Field(7, ge=1, le=1000, description="Checkpoints to keep.")


class MemberOut(BaseModel):
    position: int
    server: str
    volumes: list[str]


class PlanOut(BaseModel):
    id: str
    name: str
    project_id: str
    source_site: str
    target_site: str
    strategy: str
    freeze_bound_s: float
    retention: int
    members: list[MemberOut]
    status: str = Field(description="BUILD, ACTIVE, CHECKPOINTING, ERROR (see error) or DELETING")
    task: str | None = Field(description="The operation running on it, if any.")
    error: str | None
    created_at: datetime


class PlanEnvelope(BaseModel):
    plan: PlanOut


class PlanList(BaseModel):
    plans: list[PlanOut]


class PlanAccepted(BaseModel):
    plan: PlanOut
    operation: OperationOut


class CheckpointOut(BaseModel):
    id: str
    plan_id: str
    status: str = Field(description="pending, running, available or failed (see error)")
    consistency_point: datetime | None = Field(description="When the group snapshot was taken.")
    volumes: dict[str, Any] = Field(
        description="Per volume id: its server and its snapshot at the source site."
    )
    frozen_from: datetime | None = Field(description="The first member's freeze.")
    thawed_at: datetime | None = Field(description="The last member's thaw.")
    freeze_window_s: float | None
    error: str | None
    operation: str
    created_at: datetime


class CheckpointEnvelope(BaseModel):
    checkpoint: CheckpointOut


class CheckpointList(BaseModel):
    checkpoints: list[CheckpointOut]


class CheckpointAccepted(BaseModel):
    checkpoint: CheckpointOut
    operation: OperationOut
