"""``/identity-replica/v1``: both ends of identity replication. ``router`` is served where a
copy of the identity data is held (the site-sim), so the control plane can fill it;
``replication`` is served by the master: the snapshot a new replica starts from and the
change log it follows (long poll). Every route needs an admin token."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from cascade.api.deps import Caller, ServicesDep
from cascade.api.errors import error_responses
from cascade.api.replica_watch import ChangeWatch
from cascade.db.models import IdentityChange
from cascade.errors import BadRequest
from cascade.identity import changelog, rotation
from cascade.identity.changelog import TABLES
from cascade.identity.policy import authorize
from cascade.identity.replica import export_snapshot, install_snapshot, open_package
from cascade.identity.sealing import SealError
from cascade.services import Services

router = APIRouter(prefix="/identity-replica/v1", tags=["identity replica"])
AfterInstall = Callable[[], None]


class Installed(BaseModel):
    revision: int
    rows: int


class NodePublicKey(BaseModel):
    public_key: str


@router.get(
    "/node-key",
    response_model=NodePublicKey,
    summary="This node's public X25519 key: key material sent to it is sealed for it",
    responses=error_responses(401, 403),
)
def node_key(caller: Caller, svc: ServicesDep) -> NodePublicKey:
    authorize(caller, "admin")
    return NodePublicKey(public_key=svc.node_key.public)


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
    package = snapshot.get("keys")
    if not isinstance(snapshot.get("tables"), dict) or not isinstance(package, dict):
        raise BadRequest("A snapshot has tables and a key package.")
    try:
        opened = open_package(package, svc.node_key, str(package.get("master")))
        install_snapshot(svc.db, svc.keys, snapshot, opened)
    except SealError as error:
        raise BadRequest(f"Invalid snapshot: {error}") from error
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


class ChangeOut(BaseModel):
    seq: int
    table: str
    key: dict[str, Any]
    row: dict[str, Any] | None


class ChangeList(BaseModel):
    head: int
    changes: list[ChangeOut]
    keys: str = ""  # id of the key set the replica should hold


ReplicaName = Annotated[
    str,
    Query(
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="The replica's name, as the lag report lists it",
    ),
]
KeySetId = Annotated[
    str | None,
    Query(
        max_length=64,
        pattern=r"^[0-9a-f]+$",
        description="Id of the Fernet key set the replica holds (recorded for rotations)",
    ),
]


class KeyPackageOut(BaseModel):
    set: str
    master: str
    bundle: str


@replication.get(
    "/snapshot",
    summary="Register a replica (its node key) and export every identity row, the Fernet "
    "keys sealed for it, and the change log position the rows include (admin; carries "
    "password hashes)",
    responses=error_responses(400, 401, 403),
)
def snapshot(
    caller: Caller,
    svc: ServicesDep,
    replica: ReplicaName,
    public_key: Annotated[
        str, Query(min_length=40, max_length=64, description="The replica's X25519 node key")
    ],
) -> dict[str, Any]:
    authorize(caller, "admin")
    with svc.db.session() as session:
        rotation.register(session, replica, public_key, changelog.head(session))
    try:
        package = svc.key_package(public_key)
    except SealError as error:
        raise BadRequest(str(error)) from error
    return export_snapshot(svc.db, package)


@replication.get(
    "/keys",
    response_model=KeyPackageOut,
    summary="The Fernet key set the replica should hold, sealed for its node key",
    responses=error_responses(400, 401, 403, 404),
)
def keys(caller: Caller, svc: ServicesDep, replica: ReplicaName) -> KeyPackageOut:
    authorize(caller, "admin")
    try:
        package = svc.key_package(rotation.replica_key(svc.db, replica))
    except SealError as error:
        raise BadRequest(str(error)) from error
    return KeyPackageOut(**asdict(package))


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
    replica: ReplicaName | None = None,
    keys: KeySetId = None,
    *,
    request: Request,
) -> ChangeList:
    """News is a change after ``after``, or a key set other than ``keys`` to hold."""
    authorize(caller, "admin")
    if replica is not None:
        await asyncio.to_thread(_note, svc, replica, after, keys)
    found = await asyncio.to_thread(_changes_after, svc, after, limit)
    if found.changes or (keys is not None and found.keys != keys) or not wait:
        return found
    await _watch(request, svc).wait(after, keys, wait)
    return await asyncio.to_thread(_changes_after, svc, after, limit)


def _watch(request: Request, svc: Services) -> ChangeWatch:
    watch: ChangeWatch | None = getattr(request.app.state, "identity_change_watch", None)
    if watch is None:
        watch = request.app.state.identity_change_watch = ChangeWatch(svc)
    return watch


def _note(svc: Services, replica: str, after: int, key_set: str | None) -> None:
    with svc.db.session() as session:
        changelog.note_replica(session, replica, after, key_set)


class ReplicaOut(BaseModel):
    name: str
    seq: int
    behind: int
    lag_s: float
    seen_at: datetime
    key_set: str | None


class ReplicaList(BaseModel):
    head: int
    keys: str  # id of the key set every replica should hold
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
            keys=rotation.wanted_key_set(svc.keys, svc.staged_keys),
            replicas=[ReplicaOut(**vars(lag)) for lag in changelog.replicas(session)],
        )


@replication.delete(
    "/replicas/{name}",
    status_code=204,
    summary="Forget a replica (a site taken out of service): rotations stop waiting for it",
    responses=error_responses(401, 403, 404),
)
def forget_replica(name: str, caller: Caller, svc: ServicesDep) -> None:
    authorize(caller, "admin")
    with svc.db.session() as session:
        changelog.forget_replica(session, name)


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
            keys=rotation.wanted_key_set(svc.keys, svc.staged_keys),
        )
