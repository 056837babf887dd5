"""Changed-block tracking: which blocks of a volume were written since one of its snapshots.

A volume's record keeps ``_cbt``: its generation and, per block written, the generation of its
last write. A snapshot records the volume's map and generation as of that instant, then the
volume's generation increments; the blocks changed from snapshot A to a later snapshot B of
the same volume are those whose last write in B's map is newer than A's generation. A volume
recorded before tracking starts at generation 1 on its first write or snapshot; a snapshot
taken before then has no ``_cbt`` and cannot be the start of a comparison.

Also the blocks a file holds data in (its extents: no block content is read). Imports only
``disk``, ``records`` and the emulator's errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cascade_sim.errors import SimError
from cascade_sim.volume.disk import CHUNK, extents
from cascade_sim.volume.records import Json

BLOCK = CHUNK  # the unit of changed-block tracking and of the block-data service
KEY = "_cbt"


def block_count(size: int) -> int:
    """How many blocks cover ``size`` bytes (the last may be short)."""
    return -(-size // BLOCK)


def blocks_of(offset: int, length: int) -> range:
    """The blocks the byte range ``[offset, offset + length)`` touches."""
    if length <= 0:
        return range(0)
    return range(offset // BLOCK, (offset + length - 1) // BLOCK + 1)


def allocated_blocks(path: Path) -> set[int]:
    """The blocks of the file holding data (holes skipped; nothing is read)."""
    if not path.exists():
        return set()
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        return {
            index
            for start, end in extents(handle.fileno(), 0, size)
            for index in blocks_of(start, end - start)
        }


def _tracking(volume: Json) -> dict[str, Any]:
    state: dict[str, Any] = volume.setdefault(KEY, {"generation": 1, "written": {}})
    return state


def mark_written(volume: Json, blocks: range | set[int]) -> None:
    """Record that ``blocks`` of the volume were written now (the caller saves the volume)."""
    state = _tracking(volume)
    for index in blocks:
        state["written"][str(index)] = state["generation"]


def record_snapshot(volume: Json, snapshot: Json) -> None:
    """The snapshot keeps the volume's map and generation; the volume's generation moves on
    (the caller saves both)."""
    state = _tracking(volume)
    snapshot[KEY] = {"generation": state["generation"], "written": dict(state["written"])}
    state["generation"] += 1


def changed_blocks(since: Json, snapshot: Json) -> list[int]:
    """The blocks written between snapshot ``since`` and the later ``snapshot`` of one volume."""
    if since["volume_id"] != snapshot["volume_id"]:
        raise SimError(
            409,
            f"since: snapshot {since['id']} is of volume {since['volume_id']}, snapshot "
            f"{snapshot['id']} of volume {snapshot['volume_id']}; changed blocks compare two "
            "snapshots of one volume.",
        )
    untracked = [s["id"] for s in (since, snapshot) if KEY not in s]
    if untracked:
        raise SimError(
            409,
            f"since: comparing snapshot {since['id']} with {snapshot['id']} needs both taken "
            f"after changed-block tracking of volume {snapshot['volume_id']} began, and "
            f"{' and '.join(untracked)} was not; list all blocks instead.",
        )
    start = since[KEY]["generation"]
    if start >= snapshot[KEY]["generation"]:
        raise SimError(
            400,
            f"since: snapshot {since['id']} is not older than snapshot {snapshot['id']}.",
        )
    written: dict[str, int] = snapshot[KEY]["written"]
    return sorted(int(index) for index, generation in written.items() if generation > start)
