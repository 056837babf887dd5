"""Keypairs: a public key a project wants at every one of its sites.

Creating one records it with a copy per site of the project and accepts a ``keypair.create``
operation that imports it at every site in parallel; ``keypair.sync`` (the convergence
pass's repair, also for sites registered later) does the same again, and ``keypair.delete``
removes it everywhere. A project's keypairs policy (``policies``), if it has one, says which
sites they go to; its audit and conflict rule then replace this module's convergence check.
The copies (``set_copy``) are where a keypair stands at each site whoever acted there: these
steps, or the policy's jobs and audit (``keypair_kind``).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.models import Keypair, KeypairCopy, Operation, Site
from cascade.engine.operations import Operations
from cascade.engine.schemas import OperationOut
from cascade.engine.states import StateMachine, declare, transition
from cascade.errors import BadRequest, Conflict, NotFound, present
from cascade.replication.policies import keypair_policy, policy_targets, project_sites

KEYPAIRS = declare(
    StateMachine(
        "keypair",
        Keypair,
        {
            "create": transition((), "SYNCING", "ACTIVE"),
            "sync": transition(("ACTIVE", "ERROR"), "SYNCING", "ACTIVE"),
            "delete": transition(("ACTIVE", "ERROR", "SYNCING"), "DELETING", None),
        },
    )
)


class KeypairIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_. -]+$")
    public_key: str = Field(min_length=16, max_length=16384, description="OpenSSH public key")

    @field_validator("public_key")
    @classmethod
    def _openssh(cls, value: str) -> str:
        try:
            load_ssh_public_key(value.strip().encode())
        except (ValueError, TypeError, UnsupportedAlgorithm) as error:
            raise ValueError(f"not an OpenSSH public key: {error}") from None
        return value.strip()


class CopyOut(BaseModel):
    status: str = Field(
        description="pending, present, conflict (a different key of that name is at the "
        "site: see error), missing (deleted at the site, reported by the keypairs policy's "
        "audit), error or deleting"
    )
    error: str | None


class KeypairOut(BaseModel):
    id: str
    name: str
    project_id: str
    fingerprint: str
    public_key: str
    status: str = Field(description="SYNCING, ACTIVE, ERROR or DELETING")
    task: str | None
    sites: dict[str, CopyOut] = Field(description="Per site name: where the copy stands")
    created_at: datetime


class KeypairEnvelope(BaseModel):
    keypair: KeypairOut


class KeypairList(BaseModel):
    keypairs: list[KeypairOut]


class KeypairAccepted(BaseModel):
    keypair: KeypairOut
    operation: OperationOut


def fingerprint(public_key: str) -> str:
    """Nova's fingerprint: MD5 of the key blob, as colon-separated hex."""
    digest = hashlib.md5(base64.b64decode(public_key.split()[1]), usedforsecurity=False)
    return ":".join(f"{byte:02x}" for byte in digest.digest())


def keypair_sites(session: Session, project_id: str) -> list[Site]:
    """Where the project's keypairs go: its keypairs policy's sites, or every site of it."""
    policy = keypair_policy(session, project_id)
    if policy is not None:
        return policy_targets(session, policy)
    return project_sites(session, project_id)


def plan_copies(session: Session, keypair: Keypair) -> None:
    """A pending copy at every site the keypair goes to that has none yet."""
    present = set(
        session.scalars(select(KeypairCopy.site_id).where(KeypairCopy.keypair_id == keypair.id))
    )
    for site in keypair_sites(session, keypair.project_id):
        if site.id not in present:
            session.add(KeypairCopy(keypair_id=keypair.id, site_id=site.id, status="pending"))


def set_copy(
    session: Session, keypair_id: str, site_id: str, status: str, error: str | None
) -> None:
    """Where the keypair stands at the site now. The one place a copy is written, whether the
    keypair's own steps or its project's keypairs policy acted there."""
    copy = session.get(KeypairCopy, (keypair_id, site_id))
    if copy is None:
        session.add(KeypairCopy(keypair_id=keypair_id, site_id=site_id, status=status, error=error))
    else:
        copy.status, copy.error = status, error


def to_out(session: Session, keypair: Keypair) -> KeypairOut:
    copies = session.execute(
        select(KeypairCopy, Site.name)
        .join(Site, Site.id == KeypairCopy.site_id)
        .where(KeypairCopy.keypair_id == keypair.id)
    ).all()
    return KeypairOut(
        id=keypair.id,
        name=keypair.name,
        project_id=keypair.project_id,
        fingerprint=fingerprint(keypair.public_key),
        public_key=keypair.public_key,
        status=keypair.status,
        task=keypair.task_operation_id,
        sites={name: CopyOut(status=c.status, error=c.error) for c, name in copies},
        created_at=keypair.created_at,
    )


def listing(session: Session, project_id: str) -> list[KeypairOut]:
    rows = session.scalars(
        select(Keypair).where(Keypair.project_id == project_id).order_by(Keypair.name)
    )
    return [to_out(session, row) for row in rows]


def find(session: Session, name: str, project_id: str) -> Keypair:
    keypair = session.scalar(
        select(Keypair).where(Keypair.project_id == project_id, Keypair.name == name)
    )
    if keypair is None:
        raise NotFound(f"Could not find keypair: {name}.")
    return keypair


class KeypairService:
    def __init__(self, db: Database, operations: Operations) -> None:
        self._db = db
        self._operations = operations

    def show(self, name: str, project_id: str) -> KeypairOut:
        with self._db.session() as session:
            return to_out(session, find(session, name, project_id))

    def list(self, project_id: str) -> list[KeypairOut]:
        with self._db.session() as session:
            return listing(session, project_id)

    def create(self, spec: KeypairIn, project_id: str, key: str | None) -> Operation:
        """Accept a create; returns its operation (its ``resource_id`` is the keypair's)."""

        def write(session: Session, operation_id: str) -> tuple[str, str]:
            if not keypair_sites(session, project_id):
                raise BadRequest("The project has no site to put the keypair at.")
            taken = session.scalar(
                select(Keypair.id).where(
                    Keypair.project_id == project_id, Keypair.name == spec.name
                )
            )
            if taken is not None:
                raise Conflict(f"Key pair '{spec.name}' already exists.")
            keypair = Keypair(
                name=spec.name,
                project_id=project_id,
                public_key=spec.public_key,
                status="SYNCING",
                task_operation_id=operation_id,
            )
            session.add(keypair)
            session.flush()
            plan_copies(session, keypair)
            return "keypair", keypair.id

        return self._operations.accept(
            kind="keypair.create",
            project_id=project_id,
            request=spec.model_dump(),
            write=write,
            idempotency_key=key,
        )

    def act(self, keypair_id: str, action: str, project_id: str, key: str | None) -> Operation:
        """Accept a sync or delete of a keypair; returns its operation."""

        def write(session: Session, operation_id: str) -> tuple[str, str]:
            KEYPAIRS.begin(session, keypair_id, action, operation_id)
            keypair = present(session.get(Keypair, keypair_id), f"keypair {keypair_id}")
            if action == "sync":
                plan_copies(session, keypair)
            return "keypair", keypair_id

        return self._operations.accept(
            kind=f"keypair.{action}",
            project_id=project_id,
            request={"keypair": keypair_id},
            write=write,
            idempotency_key=key,
        )
