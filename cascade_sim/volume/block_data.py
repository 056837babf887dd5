"""The site's block-data service at ``/block-data/v1`` (the shape of a data mover such as AWS's EBS
direct APIs): a snapshot's allocated or changed blocks (from extents and the changed-block maps, no
content read), a run of a snapshot's contiguous blocks in one response, a block written into an
available volume, and per-block sha256 digests of a volume or a snapshot computed at the site. Also
``/sim/v1/block-io``: the bytes each snapshot had read and each volume had written through it since
the site-sim started (for tests), and the ``block_read_failures_after`` fault.

Imports ``disk``, ``records``, ``recovery``, ``tracking`` and ``data`` of this package, and
``cascade.direct_io``.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import threading
import weakref
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from cascade.api.keystone import Caller
from cascade.direct_io import pread_direct
from cascade.identity import AuthContext
from cascade_sim.common import RegionDep
from cascade_sim.errors import SimError
from cascade_sim.region import Region
from cascade_sim.volume.data import IO_STATUSES, write_at
from cascade_sim.volume.disk import GIB, data_file
from cascade_sim.volume.records import LABELS, Json, load, require_status
from cascade_sim.volume.recovery import recovered
from cascade_sim.volume.tracking import BLOCK, allocated_blocks, block_count, changed_blocks

MAX_RUN = 16  # contiguous blocks one read may ask for (64 MiB)


@dataclass
class BlockIO:
    """Bytes moved through the service, per snapshot read and per volume written."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    read_bytes: Counter[str] = field(default_factory=Counter)
    written_bytes: Counter[str] = field(default_factory=Counter)


_IO: weakref.WeakKeyDictionary[Region, BlockIO] = weakref.WeakKeyDictionary()
_IO_LOCK = threading.Lock()


def block_io(site: Region) -> BlockIO:
    with _IO_LOCK:
        return _IO.setdefault(site, BlockIO())


def _snapshot(
    site: Region, caller: AuthContext, snapshot_id: str, field: str | None = None
) -> Json:
    snapshot = load(site, caller, "snapshot", snapshot_id, field)
    require_status("snapshot", snapshot, {"available"}, "reading its blocks")
    return snapshot


def _block_range(kind: str, body: Json, index: int) -> tuple[int, int]:
    """The offset and length of block ``index`` of a volume or snapshot, else a 400."""
    size = body["size"] * GIB
    if not 0 <= index < block_count(size):
        raise SimError(
            400,
            f"Block {index} is outside {LABELS[kind].lower()} {body['id']}: its {size} bytes "
            f"hold blocks 0 to {block_count(size) - 1} of {BLOCK} bytes.",
        )
    return index * BLOCK, min(BLOCK, size - index * BLOCK)


def _listing(body: Json, blocks: list[int]) -> Json:
    size = body["size"] * GIB
    return {"block_size": BLOCK, "volume_size": size, "blocks": blocks}


@cache
def _zeros_digest(length: int) -> str:
    return hashlib.sha256(bytes(length)).hexdigest()


def _digests(path: Path, size: int) -> Json:
    """sha256 per block of the file holding non-zero bytes (holes are never read; the
    blocks are read past the page cache where they can be, as a restore wrote them)."""
    digests = {}
    with path.open("rb") as handle:
        for index in sorted(allocated_blocks(path)):
            offset, length = index * BLOCK, min(BLOCK, size - index * BLOCK)
            data = pread_direct(path, offset, length)
            if data is None:
                data = memoryview(os.pread(handle.fileno(), length, offset))
            digest = hashlib.sha256(data).hexdigest()
            if digest != _zeros_digest(len(data)):
                digests[str(index)] = digest
    return {"block_size": BLOCK, "volume_size": size, "digests": digests}


def _write_block(
    site: Region, caller: AuthContext, volume_id: str, index: int, data: bytes
) -> None:
    with site.state.lock:
        volume = load(site, caller, "volume", volume_id)
        require_status("volume", volume, {"available"}, "writing its blocks")
        offset, length = _block_range("volume", volume, index)
        if len(data) != length:
            raise SimError(
                400, f"Block {index} of volume {volume_id} is {length} bytes, not {len(data)}."
            )
        write_at(site, volume, offset, data, direct=True)
    counters = block_io(site)
    with counters.lock:
        counters.written_bytes[volume_id] += len(data)


block_data = APIRouter(
    prefix="/block-data/v1", tags=["block data"], dependencies=[Depends(recovered)]
)


@block_data.get(
    "/snapshots/{snapshot_id}/blocks", summary="A snapshot's allocated or changed blocks"
)
def list_snapshot_blocks(
    snapshot_id: str, caller: Caller, site: RegionDep, since: str | None = None
) -> Json:
    """Without ``since``: the blocks holding data. With ``since`` (an older snapshot of the
    same volume): the blocks written between the two."""
    snapshot = _snapshot(site, caller, snapshot_id)
    if since is None:
        allocated = allocated_blocks(data_file(site, "snapshot", snapshot_id))
        count = block_count(snapshot["size"] * GIB)
        return _listing(snapshot, sorted(i for i in allocated if i < count))
    older = _snapshot(site, caller, since, "since")
    return _listing(snapshot, changed_blocks(older, snapshot))


@block_data.get(
    "/snapshots/{snapshot_id}/blocks/{index}",
    response_class=Response,
    summary="A block of a snapshot, or a run of contiguous blocks from it",
)
def read_snapshot_blocks(
    snapshot_id: str,
    index: int,
    caller: Caller,
    site: RegionDep,
    count: int = Query(1, ge=1, le=MAX_RUN, description="blocks from ``index`` on, in order"),
) -> Response:
    """The bytes of blocks ``index`` to ``index + count - 1`` one after the other, sent from
    the snapshot file's pages (mapped, never copied into a buffer of ours: a snapshot's file
    is never written, only replaced or unlinked, which leaves a mapping whole)."""
    snapshot = _snapshot(site, caller, snapshot_id)
    offset, _length = _block_range("snapshot", snapshot, index)
    last, last_length = _block_range("snapshot", snapshot, index + count - 1)
    length = last + last_length - offset
    counters = block_io(site)
    with counters.lock:
        for block in range(index, index + count):
            if site.faults.block_read_fails():
                raise SimError(500, f"injected failure reading block {block} of {snapshot_id}.")
    with data_file(site, "snapshot", snapshot_id).open("rb") as handle:
        mapped = mmap.mmap(handle.fileno(), length, offset=offset, access=mmap.ACCESS_READ)
    mapped.madvise(mmap.MADV_WILLNEED)  # read ahead here, not when the event loop sends it
    with counters.lock:
        counters.read_bytes[snapshot_id] += length
    return Response(memoryview(mapped), media_type="application/octet-stream")


@block_data.put(
    "/volumes/{volume_id}/blocks/{index}",
    status_code=204,
    response_class=Response,
    summary="Write a whole block into an available volume",
)
async def write_volume_block(
    volume_id: str, index: int, request: Request, caller: Caller, site: RegionDep
) -> None:
    data = await request.body()
    await run_in_threadpool(_write_block, site, caller, volume_id, index, data)


@block_data.get("/volumes/{volume_id}/digests", summary="sha256 of each non-zero block")
def volume_digests(volume_id: str, caller: Caller, site: RegionDep) -> Json:
    volume = load(site, caller, "volume", volume_id)
    require_status("volume", volume, IO_STATUSES, "digesting its blocks")
    return _digests(data_file(site, "volume", volume_id), volume["size"] * GIB)


@block_data.get("/snapshots/{snapshot_id}/digests", summary="sha256 of each non-zero block")
def snapshot_digests(snapshot_id: str, caller: Caller, site: RegionDep) -> Json:
    snapshot = _snapshot(site, caller, snapshot_id)
    return _digests(data_file(site, "snapshot", snapshot_id), snapshot["size"] * GIB)


sim_block_io = APIRouter(prefix="/sim/v1", tags=["sim block data"])


@sim_block_io.get("/block-io", summary="Bytes read per snapshot, written per volume")
def show_block_io(_caller: Caller, site: RegionDep) -> Json:
    counters = block_io(site)
    with counters.lock:
        return {
            "read_bytes": dict(counters.read_bytes),
            "written_bytes": dict(counters.written_bytes),
        }
