"""Strategy 1's backup, worker side: a checkpoint's volume into the plan's chunk store.

A volume's backup reads only the blocks its snapshot changed since the same volume's
snapshot in the plan's previous checkpoint (the site's block-data service lists them from
its change tracking; the first backup lists the allocated blocks), names each block by
content (``chunks.Chunk``: its SHA-256, computed once), stores the chunks
the store does not hold yet and writes the volume's manifest (every non-zero block: its
chunk name and SHA-256), the parent's entries for unchanged blocks included, once every
chunk is stored: a backup that fails midway leaves nothing a checkpoint references, and the
next one finds the chunks already stored.

The blocks go in batches of ``BATCH``: a batch's blocks are read (contiguous ones in runs of up to
``RUN``, one request each) and hashed on ``STREAMS`` reader threads while the previous batch's
chunks are claimed (``chunk_claims.claim``: one transaction for the batch, which keeps retention's
sweep off them) and the new ones put in the store on as many writer threads; a batch's puts are
waited for once the next batch's have started, so reads and writes overlap (three batches held at
most). The chunks a backup put are made durable in one batch
(``ChunkStore.sync``) and only then marked stored (``chunk_claims.stored``), before any
manifest names them (also when the backup fails, so the next one finds them).

May import cascade.db, cascade.sites, cascade.protection (chunk_claims, chunk_store, chunks,
parallel, site_blocks).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.protection_models import Checkpoint, CheckpointVolume
from cascade.protection.chunk_claims import claim, stored
from cascade.protection.chunk_store import ChunkStore
from cascade.protection.chunks import Chunk, is_zero
from cascade.protection.parallel import STREAMS
from cascade.protection.site_blocks import BlockList, read_blocks, snapshot_blocks
from cascade.sites.driver import SiteCallFailed, SiteDriver

BATCH = 8  # blocks claimed in one transaction (three batches of 4 MiB blocks held at once)
RUN = 4  # contiguous blocks read in one request
PROGRESS_EVERY = 0.5  # seconds between two progress writes of a running backup


@dataclass(frozen=True)
class Block:
    """A block read: its size, and its chunk unless it is all zeros."""

    index: int
    size: int
    chunk: Chunk | None


Stored = tuple[list[Block], dict[int, "Future[int]"]]  # a batch and its puts, by block index
Pools = tuple[ThreadPoolExecutor, ThreadPoolExecutor]  # block readers, chunk writers


@dataclass
class Progress:
    """A volume backup's counters, written to its row every ``PROGRESS_EVERY`` seconds."""

    done_blocks: int = 0
    read_bytes: int = 0
    stored_bytes: int = 0
    written_at: float = 0.0

    def add(self, read: int, stored_now: int) -> bool:
        """Count one block; True when it is time to write the counters."""
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

    def read(self, listed: BlockList, run: list[int]) -> list[Block]:
        """A run of the snapshot's contiguous blocks, each named and hashed (once) unless it
        is all zeros."""
        first = run[0]
        data = self.driver.call(
            f"read blocks {first}-{run[-1]} of snapshot {self.snapshot_id}",
            lambda c: read_blocks(c, self.snapshot_id, first, [listed.length(i) for i in run]),
        )
        return [
            Block(index, len(block), None if is_zero(block) else Chunk.of(block))
            for index, block in zip(run, data, strict=True)
        ]

    def keep(self, chunk: Chunk, state: str) -> int:
        """Make sure the store holds a chunk claimed in ``state`` ("new", or "uploading":
        put by a backup that did not sync it); the bytes this call put. Once it is there it
        is to be synced and marked stored, also if the backup fails before its batch is
        settled."""
        put = 0
        if state != "uploading" or not self.store.has(chunk.name):
            self.store.put(chunk)
            put = len(chunk.data)
        self.unsynced.add(chunk.name)
        return put

    def store_batch(self, writers: ThreadPoolExecutor, blocks: list[Block]) -> Stored:
        """Claim the batch's chunks in one transaction and start putting those the store
        lacks on the writers' threads; the puts, by the index of the block that puts them
        (a chunk met before in this volume, or stored already, puts none)."""
        first: dict[str, tuple[int, Chunk]] = {}
        for block in blocks:
            if block.chunk is not None and block.chunk.name not in self.handled:
                first.setdefault(block.chunk.name, (block.index, block.chunk))
        self.handled.update(first)
        states = claim(
            self.db, self.store.url, {n: (c.sha256, len(c.data)) for n, (_i, c) in first.items()}
        )
        puts = {
            first[name][0]: writers.submit(self.keep, first[name][1], state)
            for name, state in states.items()
            if state != "stored"
        }
        return blocks, puts

    def settled(self, batch: Stored) -> Iterator[tuple[Block, int]]:
        """The batch's blocks with the bytes each put, once its puts are done."""
        blocks, puts = batch
        put = {index: future.result() for index, future in puts.items()}
        yield from ((block, put.get(block.index, 0)) for block in blocks)

    def backed_up(self, pools: Pools, listed: BlockList) -> Iterator[tuple[Block, int]]:
        """Every block read, with the bytes its chunk put in the store: the readers read a
        batch while the one before is claimed and its puts start on the writers, and a
        batch's puts are waited for only once the next batch's have started."""
        readers, writers = pools
        indexes = listed.blocks
        batches = [indexes[n : n + BATCH] for n in range(0, len(indexes), BATCH)]
        reading: list[Future[list[Block]]] = []
        storing: Stored | None = None
        for upcoming in [*batches, []]:
            read = [block for future in reading for block in future.result()]
            reading = [readers.submit(self.read, listed, run) for run in runs(upcoming)]
            started = self.store_batch(writers, read)
            if storing is not None:
                yield from self.settled(storing)
            storing = started
        if storing is not None:
            yield from self.settled(storing)

    def run(self) -> dict[str, int]:
        listed, manifest = self.blocks()
        self._write(
            size_bytes=listed.volume_size,
            block_size=listed.block_size,
            changed_blocks=len(listed.blocks),
            status="backing-up",
        )
        progress = Progress()
        pools = (
            ThreadPoolExecutor(STREAMS, thread_name_prefix="block-reads"),
            ThreadPoolExecutor(STREAMS, thread_name_prefix="chunk-puts"),
        )
        try:
            for block, put in self.backed_up(pools, listed):
                if block.chunk is not None:
                    manifest[str(block.index)] = [block.chunk.name, block.chunk.sha256]
                else:
                    manifest.pop(str(block.index), None)
                if progress.add(block.size, put):
                    self._counters(progress)
        finally:  # durable before a manifest names them; kept for the next run on failure
            for pool in pools:
                pool.shutdown(wait=True, cancel_futures=True)
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
        self._write(
            done_blocks=progress.done_blocks,
            read_bytes=progress.read_bytes,
            stored_bytes=progress.stored_bytes,
        )

    def _write(self, **values: object) -> None:
        with self.db.session() as session:
            session.execute(
                update(CheckpointVolume)
                .where(
                    CheckpointVolume.checkpoint_id == self.checkpoint_id,
                    CheckpointVolume.volume_id == self.volume_id,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )


def runs(indexes: list[int]) -> list[list[int]]:
    """``indexes`` (ascending) cut into runs of contiguous blocks, at most ``RUN`` each."""
    cut: list[list[int]] = []
    for index in indexes:
        if cut and len(cut[-1]) < RUN and cut[-1][-1] + 1 == index:
            cut[-1].append(index)
        else:
            cut.append([index])
    return cut


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
