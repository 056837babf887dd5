"""Strategy 1's backup, worker side: a checkpoint's volume into the plan's chunk store, and
retention's sweep of the chunks no checkpoint references any more.

A volume's backup reads only the blocks its snapshot changed since the same volume's
snapshot in the plan's previous checkpoint (the site's block-data service lists them from
its change tracking; the first backup lists the allocated blocks), names each block by
content (``chunks.chunk_name``), stores the chunks the store does not hold yet and writes the
volume's manifest (every non-zero block: its chunk name and SHA-256), the parent's entries
for unchanged blocks included, once every chunk is stored: a backup that fails midway
leaves nothing a checkpoint references, and the next one finds the chunks already stored.

Chunks are claimed in ``stored_chunks`` before a backup counts on them; the chunks a backup
put are made durable in one batch (``ChunkStore.sync``) and only then marked stored, before
any manifest names them (also when the backup fails, so the next one finds them). The sweep
marks a chunk ``deleting`` only if no manifest names it and no backup could still count on
it (its last claim older than the oldest checkpoint still running on the store), deletes it
from the store, then forgets it; a backup that meets a ``deleting`` chunk waits for it to be
gone and stores it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.protection_models import Checkpoint, CheckpointVolume, StoredChunk
from cascade.errors import Conflict
from cascade.protection.chunk_store import ChunkStore
from cascade.protection.chunks import chunk_name, sha256_hex
from cascade.protection.site_blocks import BlockList, read_block, snapshot_blocks
from cascade.retry import Backoff, until_deadline
from cascade.sites.driver import SiteCallFailed, SiteDriver

A = TypeVar("A")
R = TypeVar("R")
STREAMS = 4  # blocks read, hashed and stored at once
PROGRESS_EVERY = 0.5  # seconds between two progress writes of a running backup
RUNNING = ("pending", "running", "backing-up")
DELETING_WAIT = Backoff(first=0.1, cap=1.0)
DELETING_DEADLINE = 120.0  # seconds a backup waits for the sweep to finish with a chunk


class ChunkBeingDeleted(Conflict):
    """The sweep is deleting the chunk: it is stored again once it is gone."""


def _now() -> datetime:
    return datetime.now(UTC)


def claim(db: Database, store_url: str, name: str, sha256: str, size: int) -> str:
    """Count on chunk ``name`` in the store; its state: "stored", or "uploading" (another
    backup put it and has not synced it, or died first: the caller checks the store), or
    "new" (the caller puts it). Raises ``ChunkBeingDeleted`` while the sweep deletes it."""
    with db.session() as session:
        row = session.get(StoredChunk, (store_url, name), with_for_update=True)
        if row is None:
            session.add(
                StoredChunk(
                    store_url=store_url,
                    name=name,
                    sha256=sha256,
                    size=size,
                    state="uploading",
                    claimed_at=_now(),
                )
            )
            return "new"
        if row.state == "deleting":
            raise ChunkBeingDeleted(f"chunk {name} is being deleted from {store_url}")
        row.claimed_at = _now()
        return row.state


def stored(db: Database, store: ChunkStore, names: list[str]) -> None:
    """Once the store has made them durable, the chunks put count as stored."""
    store.sync()
    with db.session() as session:
        for batch in _batches(names):
            session.execute(
                update(StoredChunk)
                .where(StoredChunk.store_url == store.url, StoredChunk.name.in_(batch))
                .values(state="stored", claimed_at=_now())
            )


def keep(db: Database, store: ChunkStore, name: str, data: bytes, sha256: str) -> str:
    """Make sure the store holds the chunk: "stored" (it was), "found" (put by a backup
    that did not sync it: the store has it) or "put" (by this call). A found or put chunk
    counts as stored once ``stored`` has synced it."""
    state = until_deadline(  # another stream claiming the same new chunk: claim again
        DELETING_WAIT,
        DELETING_DEADLINE,
        lambda error: isinstance(error, ChunkBeingDeleted | IntegrityError),
        lambda: claim(db, store.url, name, sha256, len(data)),
    )
    if state == "stored":
        return "stored"
    if state == "uploading" and store.has(name):
        return "found"
    store.put(name, data)
    return "put"


def in_parallel(work: Callable[[A], R], items: list[A]) -> Iterator[R]:
    """``work`` of each item on ``STREAMS`` threads, results in order; the first failure
    cancels what has not started and is raised once the running ones are done."""
    pool = ThreadPoolExecutor(STREAMS, thread_name_prefix="blocks")
    try:
        yield from pool.map(work, items)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class Progress:
    """A volume backup's counters, written to its row every ``PROGRESS_EVERY`` seconds."""

    done_blocks: int = 0
    read_bytes: int = 0
    stored_bytes: int = 0
    written_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, read: int, stored_now: int) -> bool:
        """Count one block; True when it is time to write the counters."""
        with self.lock:
            self.done_blocks += 1
            self.read_bytes += read
            self.stored_bytes += stored_now
            due = time.monotonic() - self.written_at >= PROGRESS_EVERY
            if due:
                self.written_at = time.monotonic()
            return due


@dataclass(frozen=True)
class VolumeBackup:
    """What backing up one checkpoint volume needs: the database, the source site's driver,
    the store, the row's key, its snapshot and the parent's (snapshot, manifest)."""

    db: Database
    driver: SiteDriver
    store: ChunkStore
    checkpoint_id: str
    volume_id: str
    snapshot_id: str
    parent: tuple[str, dict[str, list[str]]] | None
    handled: set[str] = field(default_factory=set, compare=False)  # chunk names seen
    unsynced: set[str] = field(default_factory=set, compare=False)  # found or put, to sync
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False)

    def blocks(self) -> tuple[BlockList, dict[str, list[str]]]:
        """The blocks to read and the manifest they update: since the parent's snapshot
        when the site can tell (its change tracking), else every allocated block."""
        if self.parent is not None:
            since, manifest = self.parent
            try:
                listed = self.driver.call(
                    f"list the blocks of snapshot {self.snapshot_id} changed since {since}",
                    lambda c: snapshot_blocks(c, self.snapshot_id, since),
                )
                return listed, dict(manifest)
            except SiteCallFailed as failure:
                if failure.http_status not in (400, 404, 409):
                    raise
        listed = self.driver.call(
            f"list the blocks of snapshot {self.snapshot_id}",
            lambda c: snapshot_blocks(c, self.snapshot_id),
        )
        return listed, {}

    def one_block(self, index: int) -> tuple[int, list[str] | None, int, int]:
        """Read block ``index`` and store its chunk: (index, its manifest entry or None for
        zeros, bytes read, bytes stored)."""
        data = self.driver.call(
            f"read block {index} of snapshot {self.snapshot_id}",
            lambda c: read_block(c, self.snapshot_id, index),
        )
        if not data.strip(b"\0"):
            return index, None, len(data), 0
        name, sha256 = chunk_name(data), sha256_hex(data)
        with self.lock:  # the same bytes twice in this volume: kept once
            first = name not in self.handled
            self.handled.add(name)
        kept = keep(self.db, self.store, name, data, sha256) if first else "stored"
        if kept != "stored":
            with self.lock:
                self.unsynced.add(name)
        return index, [name, sha256], len(data), len(data) if kept == "put" else 0

    def run(self) -> dict[str, int]:
        listed, manifest = self.blocks()
        self._write(
            size_bytes=listed.volume_size,
            block_size=listed.block_size,
            changed_blocks=len(listed.blocks),
            status="backing-up",
        )
        progress = Progress()
        try:
            for index, entry, read, stored_now in in_parallel(self.one_block, listed.blocks):
                if entry is None:
                    manifest.pop(str(index), None)
                else:
                    manifest[str(index)] = entry
                if progress.add(read, stored_now):
                    self._counters(progress)
        finally:  # durable before a manifest names them; kept for the next run on failure
            stored(self.db, self.store, sorted(self.unsynced))
        self._counters(progress)
        self._write(blocks=manifest, status="available")
        return {
            "changed_blocks": len(listed.blocks),
            "read_bytes": progress.read_bytes,
            "stored_bytes": progress.stored_bytes,
            "chunks": len(manifest),
        }

    def _counters(self, progress: Progress) -> None:
        with progress.lock:
            counted = {
                "done_blocks": progress.done_blocks,
                "read_bytes": progress.read_bytes,
                "stored_bytes": progress.stored_bytes,
            }
        self._write(**counted)

    def _write(self, **values: object) -> None:
        with self.db.session() as session:
            session.execute(
                update(CheckpointVolume)
                .where(
                    CheckpointVolume.checkpoint_id == self.checkpoint_id,
                    CheckpointVolume.volume_id == self.volume_id,
                )
                .values(**values)
            )


def parent_of(session: Session, checkpoint: Checkpoint, volume_id: str) -> CheckpointVolume | None:
    """The same volume's backup in the plan's newest other available checkpoint."""
    return session.scalar(
        select(CheckpointVolume)
        .join(Checkpoint, Checkpoint.id == CheckpointVolume.checkpoint_id)
        .where(
            Checkpoint.plan_id == checkpoint.plan_id,
            Checkpoint.id != checkpoint.id,
            Checkpoint.status == "available",
            CheckpointVolume.volume_id == volume_id,
            CheckpointVolume.status == "available",
        )
        .order_by(Checkpoint.created_at.desc(), Checkpoint.id.desc())
        .limit(1)
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
    """Claims at or after this moment may belong to a backup still running on the store (the
    workers' clocks are assumed to agree, as the engine's heartbeats assume too)."""
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
        candidates = session.scalars(
            select(StoredChunk.name).where(
                StoredChunk.store_url == store_url,
                StoredChunk.state != "deleting",
                StoredChunk.claimed_at < _horizon(session, store_url),
            )
        )
        doomed = [name for name in candidates if name not in names]
        for batch in _batches(doomed):
            session.execute(
                update(StoredChunk)
                .where(StoredChunk.store_url == store_url, StoredChunk.name.in_(batch))
                .values(state="deleting")
            )
    with db.session() as session:  # what an earlier sweep marked and did not finish
        return list(
            session.scalars(
                select(StoredChunk.name).where(
                    StoredChunk.store_url == store_url, StoredChunk.state == "deleting"
                )
            )
        )


def _batches(names: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(names), size):
        yield names[start : start + size]


def sweep(db: Database, store: ChunkStore) -> int:
    """Delete from the store every chunk no checkpoint references and no running backup may
    count on; the number deleted."""
    doomed = _mark_unreferenced(db, store.url)
    for name in doomed:
        store.delete(name)
        with db.session() as session:
            session.execute(
                delete(StoredChunk).where(
                    StoredChunk.store_url == store.url, StoredChunk.name == name
                )
            )
    return len(doomed)
