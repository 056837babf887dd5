"""``/identity-replica/v1``: both ends of identity replication. ``router`` is served by a
site-sim, so the control plane can make its identity a replica of the master's;
``feed`` is served by the master: the snapshot a new replica starts from and the
change log it follows (long poll). Every route needs an admin token."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from cascade.api.deps import Caller, IdentityDep
from cascade.api.errors import error_responses
from cascade.errors import BadRequest
from cascade.identity.follower import Master
from cascade.identity.policy import authorize
from cascade.identity.sealing import SealError

REPLICA_NAME = r"^[A-Za-z0-9_.:-]+$"
router = APIRouter(prefix="/identity-replica/v1", tags=["identity replica"])


class MasterIn(BaseModel):
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048, description="The master")
    username: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=4096)
    project: str = Field("admin", min_length=1, max_length=255)
    name: str = Field(
        min_length=1,
        max_length=255,
        pattern=REPLICA_NAME,
        description="This site's name in the master's replica list",
    )


class FollowingOut(BaseModel):
    master: str
    seq: int


FollowMaster = Callable[[Master, str], int]  # the master, this site's name there


@router.put(
    "/master",
    response_model=FollowingOut,
    summary="Make this site's identity a replica of a master's: bootstrap from its snapshot "
    "now, then follow its change log and key rotations (also after restarts)",
    responses=error_responses(400, 401, 403, 502, 503),
)
def follow_master(master: MasterIn, *, caller: Caller, request: Request) -> FollowingOut:
    authorize(caller, "admin")
    follow: FollowMaster = request.app.state.follow_master
    url = master.url.rstrip("/")
    try:
        seq = follow(Master(url, master.username, master.password, master.project), master.name)
    except SealError as error:
        raise BadRequest(f"The master's key package does not open here: {error}") from error
    return FollowingOut(master=url, seq=seq)


# --- the master's side: what replicas pull ---------------------------------------------------

feed = APIRouter(prefix="/identity-replica/v1", tags=["identity replica"])
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
    challenge: str = Field(
        "",
        description="For the replica named in the request: answer it on the next poll with "
        "`challenge` and `proof` to have the key set it holds counted",
    )


ReplicaName = Annotated[
    str,
    Query(
        min_length=1,
        max_length=255,
        pattern=REPLICA_NAME,
        description="The replica's name, as the lag report lists it",
    ),
]
KeySetId = Annotated[
    str | None,
    Query(
        max_length=64,
        pattern=r"^[0-9a-f]+$",
        description="Id of the Fernet key set the replica holds (counted for rotations only "
        "with `challenge` and `proof`)",
    ),
]
Challenge = Annotated[
    str | None,
    Query(
        max_length=200,
        pattern=r"^[0-9]{1,12}\.[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}$",
        description="A challenge this master issued to the replica (in its last answer, key "
        "package or snapshot)",
    ),
]
Proof = Annotated[
    str | None,
    Query(
        min_length=64,
        max_length=64,
        pattern=r"^[0-9a-f]+$",
        description="HMAC-SHA256 over the replica's name, `keys` and `challenge`, keyed by a "
        "key derived from every key of that set: proves the replica holds it",
    ),
]


class KeyPackageOut(BaseModel):
    set: str
    master: str
    bundle: str
    challenge: str = ""  # to prove holding the set on the next poll


@feed.get(
    "/snapshot",
    summary="Register a replica (its node key) and export every identity row, the Fernet "
    "keys sealed for it, and the change log position the rows include (admin; carries "
    "password hashes)",
    responses=error_responses(400, 401, 403),
)
def snapshot(
    caller: Caller,
    svc: IdentityDep,
    replica: ReplicaName,
    public_key: Annotated[
        str, Query(min_length=40, max_length=64, description="The replica's X25519 node key")
    ],
) -> dict[str, Any]:
    authorize(caller, "admin")
    return svc.replica_feed.register(replica, public_key)


@feed.get(
    "/keys",
    response_model=KeyPackageOut,
    summary="The Fernet key set the replica should hold, sealed for its node key",
    responses=error_responses(400, 401, 403, 404),
)
def keys(caller: Caller, svc: IdentityDep, replica: ReplicaName) -> KeyPackageOut:
    authorize(caller, "admin")
    return KeyPackageOut(**asdict(svc.replica_feed.package_for(replica)))


@feed.get(
    "/changes",
    response_model=ChangeList,
    summary="Identity changes after a sequence number, in order; waits up to `wait` seconds "
    "for one when there is none yet (long poll)",
    responses=error_responses(400, 401, 403, 404),
)
async def changes(
    caller: Caller,
    svc: IdentityDep,
    after: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="Last sequence number applied")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_CHANGES)] = 1000,
    wait: Annotated[float, Query(ge=0, le=60, description="Seconds to wait for news")] = 0,
    replica: ReplicaName | None = None,
    keys: KeySetId = None,
    challenge: Challenge = None,
    proof: Proof = None,
) -> ChangeList:
    """News is a change after ``after``, or a key set other than ``keys`` to hold. The key
    set a replica names counts as held only when ``proof`` answers ``challenge``."""
    authorize(caller, "admin")
    master = svc.replica_feed
    if replica is not None:
        await asyncio.to_thread(master.note, replica, after, keys, challenge, proof)
    found = await asyncio.to_thread(master.changes_after, after, limit, replica)
    if not (found.changes or (keys is not None and found.keys != keys) or not wait):
        await master.wait(after, keys, wait)
        found = await asyncio.to_thread(master.changes_after, after, limit, replica)
    return ChangeList(
        head=found.head,
        changes=[ChangeOut(**asdict(c)) for c in found.changes],
        keys=found.keys,
        challenge=found.challenge,
    )


class ReplicaOut(BaseModel):
    name: str
    seq: int = Field(description="The last change it has applied")
    behind: int = Field(description="Changes it has not applied yet")
    lag_s: float = Field(
        description="How stale its copy may be: the age of the oldest change it has not "
        "applied, and at least `seen_s` once it is silent"
    )
    seen_at: datetime = Field(description="Its latest poll")
    seen_s: float = Field(description="Seconds since its latest poll")
    silent: bool = Field(description="Not seen recently: it no longer follows")
    key_set: str | None = Field(description="The Fernet key set it last proved it holds")


class ReplicaList(BaseModel):
    head: int
    keys: str  # id of the key set every replica should hold
    replicas: list[ReplicaOut]


@feed.get(
    "/replicas",
    response_model=ReplicaList,
    summary="Replicas following the change log: the last change each applied, how many it "
    "has not, how stale its copy may be, when it last polled, the key set it proved it holds",
    responses=error_responses(400, 401, 403),
)
def list_replicas(caller: Caller, svc: IdentityDep) -> ReplicaList:
    authorize(caller, "admin")
    report = svc.replica_feed.report()
    return ReplicaList(
        head=report.head,
        keys=report.keys,
        replicas=[ReplicaOut(**vars(lag)) for lag in report.replicas],
    )


class IdentityEndpointIn(BaseModel):
    region: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._-]+$")
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)


@feed.put(
    "/replicas/{name}/endpoint",
    status_code=204,
    summary="List a replica as its region's identity endpoint in the catalog, so clients at "
    "its site reach it by region name",
    responses=error_responses(400, 401, 403, 404),
)
def replica_endpoint(
    name: str, endpoint: IdentityEndpointIn, caller: Caller, svc: IdentityDep
) -> None:
    authorize(caller, "admin")
    svc.replica_feed.list_endpoint(name, endpoint.region, endpoint.url)


@feed.delete(
    "/replicas/{name}",
    status_code=204,
    summary="Forget a replica (a site taken out of service): rotations stop waiting for it",
    responses=error_responses(401, 403, 404),
)
def forget_replica(name: str, caller: Caller, svc: IdentityDep) -> None:
    authorize(caller, "admin")
    svc.replica_feed.forget(name)
