"""``/identity-replica/v1``: both ends of identity replication. ``router`` is served where a
copy of the identity data is held (the site-sim), so the control plane can fill it;
``replication`` is served by the master: the snapshot a new replica starts from and the
change log it follows (long poll). Every route needs an admin token."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from cascade.api.deps import Caller, ServicesDep
from cascade.api.errors import error_responses
from cascade.db.models import IdentityChange
from cascade.errors import BadRequest
from cascade.identity import changelog
from cascade.identity.changelog import TABLES
from cascade.identity.policy import authorize
from cascade.identity.replica import export_snapshot, install_snapshot
from cascade.services import Services

router = APIRouter(prefix="/identity-replica/v1", tags=["identity replica"])
AfterInstall = Callable[[], None]


class Installed(BaseModel):
    revision: int
    rows: int


@router.put(
    "/snapshot",
    response_model=Installed,
    summary="Install an identity snapshot",
    responses=error_responses(400, 401, 403),
)
def install(
    snapshot: dict[str, Any] = Body(...), *, caller: Caller, svc: ServicesDep, request: Request
) -> Installed:
    authorize(caller, "admin")
    if not isinstance(snapshot.get("tables"), dict) or not snapshot.get("keys"):
        raise BadRequest("A snapshot has tables and keys.")
    try:
        install_snapshot(svc.db, svc.keys, snapshot)
    except (KeyError, TypeError, ValueError) as error:
        raise BadRequest(f"Invalid snapshot: {type(error).__name__}: {error}") from error
    svc.tokens.reload_keys()
    after: AfterInstall | None = getattr(request.app.state, "after_identity_install", None)
    if after is not None:
        after()
    rows = sum(len(snapshot["tables"].get(name, [])) for name in TABLES)
    return Installed(revision=int(snapshot.get("revision", 0)), rows=rows)


# --- the master's side: what replicas pull ---------------------------------------------------

replication = APIRouter(prefix="/identity-replica/v1", tags=["identity replica"])
MAX_CHANGES = 5000
POLL_S = 0.1  # how often a waiting request looks for news: <= 0.1 s added to a change's trip


class ChangeOut(BaseModel):
    seq: int
    table: str
    key: dict[str, Any]
    row: dict[str, Any] | None


class ChangeList(BaseModel):
    head: int
    changes: list[ChangeOut]


@replication.get(
    "/snapshot",
    summary="Export every identity row and Fernet key, with the change log position they "
    "include (admin; carries password hashes and key material)",
    responses=error_responses(400, 401, 403),
)
def snapshot(caller: Caller, svc: ServicesDep) -> dict[str, Any]:
    authorize(caller, "admin")
    return export_snapshot(svc.db, svc.keys)


@replication.get(
    "/changes",
    response_model=ChangeList,
    summary="Identity changes after a sequence number, in order; waits up to `wait` seconds "
    "for one when there is none yet (long poll)",
    responses=error_responses(400, 401, 403),
)
async def changes(
    caller: Caller,
    svc: ServicesDep,
    after: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="Last sequence number applied")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_CHANGES)] = 1000,
    wait: Annotated[float, Query(ge=0, le=60, description="Seconds to wait for news")] = 0,
    replica: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=255,
            pattern=r"^[A-Za-z0-9_.:-]+$",
            description="The polling replica's name: its position is recorded for the lag report",
        ),
    ] = None,
) -> ChangeList:
    authorize(caller, "admin")
    if replica is not None:
        await asyncio.to_thread(_note, svc, replica, after)
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        found = await asyncio.to_thread(_changes_after, svc, after, limit)
        if found.changes or asyncio.get_running_loop().time() >= deadline:
            return found
        await asyncio.sleep(POLL_S)


def _note(svc: Services, replica: str, after: int) -> None:
    with svc.db.session() as session:
        changelog.note_replica(session, replica, after)


class ReplicaOut(BaseModel):
    name: str
    seq: int
    behind: int
    lag_s: float
    seen_at: datetime


class ReplicaList(BaseModel):
    head: int
    replicas: list[ReplicaOut]


@replication.get(
    "/replicas",
    response_model=ReplicaList,
    summary="Replicas following the change log: the last change each applied, how many it "
    "has not, and the age of the oldest of those",
    responses=error_responses(400, 401, 403),
)
def list_replicas(caller: Caller, svc: ServicesDep) -> ReplicaList:
    authorize(caller, "admin")
    with svc.db.session() as session:
        return ReplicaList(
            head=changelog.head(session),
            replicas=[ReplicaOut(**vars(lag)) for lag in changelog.replicas(session)],
        )


def _changes_after(svc: Services, after: int, limit: int) -> ChangeList:
    with svc.db.session() as session:
        rows = session.scalars(
            select(IdentityChange)
            .where(IdentityChange.seq > after)
            .order_by(IdentityChange.seq)
            .limit(limit)
        ).all()
        return ChangeList(
            head=changelog.head(session),
            changes=[ChangeOut(seq=r.seq, table=r.table, key=r.key, row=r.row) for r in rows],
        )
