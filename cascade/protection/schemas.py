"""Request and response bodies of ``/v1/protection-plans``, ``/v1/checkpoints`` and
``/v1/restores``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cascade.engine.schemas import OperationOut

MIN_CHECKPOINT_EVERY_S = 60  # a schedule's shortest interval (a checkpoint freezes the VNF)
MAX_CHECKPOINT_EVERY_S = 30 * 86400


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
    strategy: Literal["group_snapshot", "storage_replication", "image_snapshot"] = Field(
        "group_snapshot",
        description="group_snapshot: one group snapshot of every volume, backed up into the "
        "chunk store; storage_replication: the same consistency point, shipped by the site's "
        "storage to its replication target (every volume of a replicated type), managed by "
        "reference at the target on restore; image_snapshot: one server, imaged through the "
        "image service and the image copied to the target.",
    )
    freeze_bound_s: float = Field(
        30.0, gt=0, le=600, description="The longest any member may stay frozen (seconds)."
    )
    retention: int = Field(7, ge=1, le=1000, description="Checkpoints to keep.")
    checkpoint_every_s: int | None = Field(
        None,
        ge=MIN_CHECKPOINT_EVERY_S,
        le=MAX_CHECKPOINT_EVERY_S,
        description="The schedule: seconds between checkpoints, taken by the engine's "
        "once-per-cluster schedule (each due this long after the newest checkpoint's "
        f"consistency point, or the plan's creation); {MIN_CHECKPOINT_EVERY_S} s to "
        f"{MAX_CHECKPOINT_EVERY_S // 86400} days. Omitted or null: checkpoints only on request.",
    )
    chunk_store: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="Where the checkpoints' backups go: site://SITE/CONTAINER (a site's "
        "object store), file:///PATH (a directory every worker reaches) or "
        "s3://HOST[:PORT]/BUCKET (an S3-compatible store; s3+http:// without TLS; the "
        "workers' own S3 credentials); default: site://TARGET/cascade-backups, the target "
        "site's object store.",
    )


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
    checkpoint_every_s: int | None = Field(
        description="The schedule: seconds between checkpoints; none: only on request."
    )
    next_checkpoint_at: datetime | None = Field(
        description="When the schedule takes the next checkpoint: the newest checkpoint's "
        "consistency point (its creation, if it has none), or the plan's creation, plus "
        "checkpoint_every_s; none without a schedule. While one is queued or running the "
        "schedule waits for it to end."
    )
    members: list[MemberOut]
    chunk_store: str
    rpo_s: float | None = Field(
        description="Recovery point: the age (seconds) of the consistency point of the newest "
        "checkpoint restorable at the target; none before the first."
    )
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


class CheckpointVolumeOut(BaseModel):
    volume: str = Field(description="The volume's id at the source site.")
    server: str
    position: int = Field(description="Its server's position in the plan.")
    device: str = Field(description="Its device at its server (the boot disk's is first).")
    snapshot: str = Field(description="Its snapshot at the source site.")
    status: str = Field(description="pending, backing-up, available or failed")
    size_bytes: int
    block_size: int
    incremental_from: str | None = Field(description="The checkpoint its backup builds on.")
    changed_blocks: int = Field(description="Blocks read: those changed since that checkpoint.")
    done_blocks: int
    read_bytes: int
    stored_bytes: int = Field(description="Bytes of chunks the store did not hold yet.")
    chunks: int = Field(description="Non-zero blocks in its manifest.")
    replica: str | None = Field(
        description="storage_replication: its replica's reference at the replication target."
    )


class CheckpointPortOut(BaseModel):
    port: str = Field(description="The port's id (the row holding the address).")
    network_id: str
    network: str = Field(description="The Cascade network's name when it was recorded.")
    ip: str
    mac: str


class CheckpointOut(BaseModel):
    id: str
    plan_id: str
    status: str = Field(
        description="pending, running (freezing), backing-up, available (restorable at the "
        "target) or failed (see error)"
    )
    consistency_point: datetime | None = Field(description="When the group snapshot was taken.")
    backed_up_at: datetime | None = Field(description="When it became restorable.")
    store: str = Field(description="The chunk store its backups are in.")
    volumes: list[CheckpointVolumeOut]
    images: dict[str, Any] = Field(
        description="image_snapshot: per server its image at the source (source), its copy "
        "at the target (target), size and the digest both have (hash_algo, hash)."
    )
    ports: dict[str, CheckpointPortOut] = Field(
        description="Per member server its port on a Cascade network when the checkpoint "
        "began (servers on a site's network have none): what a restore keeps."
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


class MappingIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    flavors: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        description="Source flavor -> the target site's flavor (unmapped: the same name).",
    )
    networks: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        description="Source network -> the target site's network (unmapped: the same name).",
    )
    images: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        description="Source image -> the target's, for servers that boot from their image.",
    )
    availability_zone: str | None = Field(None, min_length=1, max_length=255)


class RestoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    checkpoint: str = Field(min_length=1, max_length=64, description="An available checkpoint.")
    target_site: str | None = Field(
        None, min_length=1, max_length=255, description="Site name or id; default: the plan's."
    )
    mapping: MappingIn = Field(default_factory=MappingIn)
    service_ip: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="A service IP (id) moved to a restored server once every server is ACTIVE "
        "with its data verified.",
    )
    service_ip_to: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="The source server (id or name) whose restored server takes the service "
        "IP; default: its holder's.",
    )


def _absent(value: object) -> bool:
    return value is None


def _recorded(description: str) -> Any:
    """A field of a restore's record that is there once the restore has recorded it: left
    out of the answer until then (never null)."""
    return Field(None, description=description, exclude_if=_absent)


class RestoreVolumeOut(BaseModel):
    """One source volume of a restore, as far as the restore got with it."""

    volume: str | None = _recorded("Its restored volume at the target.")
    blocks: int | None = _recorded("Blocks of its manifest to write.")
    written: int | None = _recorded("Blocks written so far.")
    verified: bool = Field(
        False, description="Whether the target's digests of it matched the checkpoint's."
    )
    replica: str | None = _recorded("storage_replication: the replica it was managed from.")


class PortOriginOut(BaseModel):
    """Where a port moved from the source server was, which a failed restore gives back."""

    site_id: str | None
    site_port_id: str | None
    host: str | None
    vtep: str | None


class RestorePortOut(BaseModel):
    network_id: str
    network: str = Field(description="The Cascade network's name.")
    ip: str | None = Field(description="Its address (none: the network's next free one).")
    mac: str | None
    port: str | None = Field(
        description="The port's id: the source server's when the address is kept, moved to "
        "the restored server; none until a new one is made."
    )
    server: str | None = _recorded("The restored server holding it, once made.")
    moved_from: PortOriginOut | None = _recorded(
        "A port moved from the source server: where it was."
    )


class RestoreServiceIPOut(BaseModel):
    id: str
    address: str
    to: str = Field(description="The source server whose restored server takes it.")
    status: Literal["pending", "moved", "failed"]
    operation: str | None = _recorded("Its service_ip.move operation.")
    holder: str | None = _recorded("The restored server taking it.")
    holder_site: str | None = _recorded("The site of that server, once moved.")
    switchover_s: float | None = _recorded("Seconds the address took to change hands.")
    pending_sites: dict[str, str] | None = _recorded(
        "Sites that could not be told (a lost source), and why: freed on their return."
    )
    error: str | None = _recorded("Why the move failed.")


class RestoreCleanupOut(BaseModel):
    """What a failed restore removed again at the target."""

    servers: list[str] = Field(description="The restored servers deleted.")
    volumes: list[str] | None = _recorded("The volumes deleted.")
    kept_replicas: list[str] | None = _recorded(
        "storage_replication: the replicas adopted and kept (the only copy)."
    )
    error: str | None = _recorded("Why the clean-up itself did not finish.")


class RestoreOut(BaseModel):
    id: str
    project_id: str
    plan_id: str
    checkpoint: str
    target_site: str
    mapping: MappingIn
    status: str = Field(description="pending, running, completed or failed (see error)")
    volumes: dict[str, RestoreVolumeOut] = Field(
        description="Per source volume: its restored volume at the target, blocks written of "
        "blocks, and whether the target's digests matched the checkpoint's."
    )
    servers: dict[str, str] = Field(description="Source server -> its restored server.")
    ports: dict[str, RestorePortOut] = Field(
        description="Source server -> its restored server's port on a Cascade network."
    )
    service_ip: RestoreServiceIPOut | None = Field(
        description="The service IP moved once every server is ACTIVE with its data verified."
    )
    cleanup: RestoreCleanupOut | None = Field(
        description="A failed restore: the servers and volumes it made that were removed "
        "again at the target (and an error if the clean-up itself failed)."
    )
    started_at: datetime | None
    finished_at: datetime | None
    rto_s: float | None = Field(
        description="Recovery time: start until every server ACTIVE with its data verified."
    )
    error: str | None
    operation: str
    created_at: datetime


class RestoreEnvelope(BaseModel):
    restore: RestoreOut


class RestoreList(BaseModel):
    restores: list[RestoreOut]


class RestoreAccepted(BaseModel):
    restore: RestoreOut
    operation: OperationOut
