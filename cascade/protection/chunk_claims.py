"""Which chunks of a chunk store Cascade counts on (``stored_chunks``), and retention's sweep
of the chunks nothing references any more, safely against backups running beside it.

A backup *claims* the chunks it is about to reference, a batch at a time in one transaction
(``claim``: one insert-if-absent statement for the batch, one update of the claim time, one
read of their states): a chunk new to the store is "new" (the caller puts it), one another
backup put and has not synced is "uploading" (the caller checks the store), else "stored".
Once the store has made the chunks a backup put durable (``ChunkStore.sync``), ``stored``
marks them stored, before any manifest names them.

The sweep marks a chunk ``deleting`` only if no manifest names it and its last claim is
older than the oldest checkpoint still running on the store (the *horizon*: a backup in
progress claimed its chunks after its checkpoint began), the claim time re-checked in the
marking statement itself, so a claim committed meanwhile keeps the chunk; then it deletes
the chunk from the store and forgets it. A claim never takes a ``deleting`` chunk: the batch
waits (Cascade's backoff) until the sweep has forgotten it, then claims it as new. The
workers' clocks are assumed to agree, as the engine's heartbeats assume too.

May import cascade.db, cascade.errors, cascade.retry and ``chunk_store``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.protection_models import Checkpoint, CheckpointVolume, StoredChunk
from cascade.errors import Conflict
from cascade.protection.chunk_store import ChunkStore
from cascade.retry import Backoff, until_deadline

RUNNING = ("pending", "running", "backing-up")
DELETING_WAIT = Backoff(first=0.1, cap=1.0)
DELETING_DEADLINE = 120.0  # seconds a backup waits for the sweep to finish with a chunk
BATCH = 500  # names per statement of the sweep and of ``stored``


class ChunkBeingDeleted(Conflict):
    """The sweep is deleting the chunk: it is stored again once it is gone."""


def _now() -> datetime:
    return datetime.now(UTC)


def _claim_once(db: Database, store_url: str, chunks: dict[str, tuple[str, int]]) -> dict[str, str]:
    now = _now()
    rows = [
        {
            "store_url": store_url,
            "name": name,
            "sha256": sha256,
            "size": size,
            "state": "uploading",
            "claimed_at": now,
        }
        for name, (sha256, size) in sorted(chunks.items())  # one lock order for every backup
    ]
    insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
    added = insert(StoredChunk).on_conflict_do_nothing().returning(StoredChunk.name)
    with db.session() as session:  # one multi-row statement, compiled once per process
        states = dict.fromkeys(session.connection().scalars(added, rows), "new")
        others = sorted(set(chunks) - set(states))
        if others:
            mine = (StoredChunk.store_url == store_url, StoredChunk.name.in_(others))
            session.execute(
                update(StoredChunk)
                .where(*mine, StoredChunk.state != "deleting")
                .values(claimed_at=now)
                .execution_options(synchronize_session=False)
            )
            found = session.execute(select(StoredChunk.name, StoredChunk.state).where(*mine))
            states |= {name: state for name, state in found}
        gone = [name for name in chunks if states.get(name, "deleting") == "deleting"]
        if gone:  # rolled back: the whole batch is claimed again once the sweep is done
            raise ChunkBeingDeleted(
                f"{len(gone)} chunk(s) being deleted from {store_url}, such as {gone[0]}"
            )
    return states


def claim(db: Database, store_url: str, chunks: dict[str, tuple[str, int]]) -> dict[str, str]:
    """Count on the chunks (name -> (sha256, size)) in the store, in one transaction; per
    name its state: "new" (the caller puts it), "uploading" (put by another backup that has
    not synced it, or died first: the caller checks the store) or "stored". Chunks the sweep
    is deleting are waited for and then claimed as new."""
    if not chunks:
        return {}
    return until_deadline(
        DELETING_WAIT,
        DELETING_DEADLINE,
        lambda error: isinstance(error, ChunkBeingDeleted),
        lambda: _claim_once(db, store_url, chunks),
    )


def _batches(names: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(names), BATCH):
        yield names[start : start + BATCH]


def stored(db: Database, store: ChunkStore, names: list[str]) -> None:
    """Once the store has made them durable, the chunks put count as stored."""
    store.sync(names)
    with db.session() as session:
        for batch in _batches(names):
            session.execute(
                update(StoredChunk)
                .where(
                    StoredChunk.store_url == store.url,
                    StoredChunk.name.in_(batch),
                    StoredChunk.state != "deleting",
                )
                .values(state="stored", claimed_at=_now())
                .execution_options(synchronize_session=False)
            )


def referenced(session: Session, store_url: str) -> set[str]:
    """Every chunk name a manifest of a checkpoint on ``store_url`` holds."""
    manifests = session.scalars(
        select(CheckpointVolume.blocks)
        .join(Checkpoint, Checkpoint.id == CheckpointVolume.checkpoint_id)
        .where(Checkpoint.store_url == store_url)
    )
    return {entry[0] for manifest in manifests for entry in manifest.values()}


def _horizon(session: Session, store_url: str) -> datetime:
    """Claims at or after this moment may belong to a backup still running on the store."""
    oldest = session.scalar(
        select(Checkpoint.created_at)
        .where(Checkpoint.store_url == store_url, Checkpoint.status.in_(RUNNING))
        .order_by(Checkpoint.created_at)
        .limit(1)
    )
    return oldest if oldest is not None else _now()


def _mark_unreferenced(db: Database, store_url: str) -> list[str]:
    with db.session() as session:
        names = referenced(session, store_url)
        horizon = _horizon(session, store_url)
        unclaimed = (
            StoredChunk.store_url == store_url,
            StoredChunk.state != "deleting",
            StoredChunk.claimed_at < horizon,
        )
        candidates = session.scalars(select(StoredChunk.name).where(*unclaimed))
        doomed = [name for name in candidates if name not in names]
        for batch in _batches(doomed):
            session.execute(  # the claim re-checked: one made since the read keeps its chunk
                update(StoredChunk)
                .where(*unclaimed, StoredChunk.name.in_(batch))
                .values(state="deleting")
                .execution_options(synchronize_session=False)
            )
    with db.session() as session:  # marked now, or by an earlier sweep that did not finish
        return list(
            session.scalars(
                select(StoredChunk.name).where(
                    StoredChunk.store_url == store_url, StoredChunk.state == "deleting"
                )
            )
        )


def sweep(db: Database, store: ChunkStore) -> int:
    """Delete from the store every chunk no checkpoint references and no running backup may
    count on; the number deleted."""
    doomed = _mark_unreferenced(db, store.url)
    for name in doomed:
        store.delete(name)
        forget(db, store.url, name)
    return len(doomed)


def forget(db: Database, store_url: str, name: str) -> None:
    """The sweep is done with a chunk it deleted from the store: it may be claimed anew."""
    with db.session() as session:
        session.execute(
            delete(StoredChunk).where(StoredChunk.store_url == store_url, StoredChunk.name == name)
        )
