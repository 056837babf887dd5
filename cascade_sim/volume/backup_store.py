"""The backup store several sites share (``site.config.backup_store``): writing a backup into
it chunk by chunk, incremental backups storing only what changed, reading a backup back with
every block verified, removing one, and importing one another site wrote.

One directory per backup: ``metadata.json`` (id, owner project, volume size, parent, chunk
geometry...; written last, so a directory without it is an unfinished backup),
``sha256.json`` (one entry per 4 MiB chunk of the volume: null for zeros, else the backup
storing the chunk and the sha256 of each 32 KiB block) and ``chunks/<index>`` (the chunks
this backup stores; an incremental backup stores only those that differ from its parent's at
the same position).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from cascade_sim.region import Region
from cascade_sim.state import now_iso
from cascade_sim.volume.disk import (
    CHUNK,
    GIB,
    ZEROS,
    data_file,
    extents,
    replacing,
    sparse_copy,
    write_json,
)
from cascade_sim.volume.records import Json, save, update

BLOCK = 32 << 10  # a backup's unit of verification: one sha256 each
PROGRESS_EVERY = 0.5  # seconds between two progress reports of a running backup
STORE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SHARED_FIELDS = (
    "id",
    "name",
    "description",
    "size",
    "volume_id",
    "snapshot_id",
    "is_incremental",
    "created_at",
    "data_timestamp",
    "metadata",
    "container",
    "availability_zone",
    "user_id",
    "object_count",
)


class InjectedFailure(Exception):
    """The ``backup_failure_at`` fault."""


def store_dir(site: Region, backup_id: str) -> Path:
    return site.config.backup_store / backup_id


def _chunk_path(site: Region, backup_id: str, index: int) -> Path:
    return store_dir(site, backup_id) / "chunks" / f"{index:08d}"


def store_metadata(site: Region, backup_id: str) -> Json | None:
    """A finished backup's metadata in the store, or None."""
    if not STORE_ID.match(backup_id):
        return None
    try:
        metadata: Json = json.loads((store_dir(site, backup_id) / "metadata.json").read_text())
    except FileNotFoundError:
        return None
    return metadata


def _store_chunks(site: Region, backup_id: str) -> list[Json | None]:
    chunks: list[Json | None] = json.loads(
        (store_dir(site, backup_id) / "sha256.json").read_text()
    )["chunks"]
    return chunks


def backup_chain(site: Region, backup_id: str) -> list[Json]:
    """The metadata of the backup and of every backup it builds on, newest first; a
    LookupError if one of them is not in the store."""
    chain: list[Json] = []
    wanted: str | None = backup_id
    while wanted is not None:
        metadata = store_metadata(site, wanted)
        if metadata is None:
            raise LookupError(f"backup {wanted} is not in the backup store")
        chain.append(metadata)
        wanted = metadata["parent_id"]
    return chain


def dependents(site: Region) -> set[str]:
    """Ids of backups an incremental backup builds on, in the store or being written here."""
    parents = {b["_parent"] for b in site.state.list("backup") if b["status"] == "creating"}
    store = site.config.backup_store
    for directory in store.iterdir() if store.is_dir() else ():
        metadata = store_metadata(site, directory.name)
        if metadata is not None:
            parents.add(metadata["parent_id"])
    return {parent for parent in parents if parent}


def _block_hashes(data: bytes, block: int = BLOCK) -> list[str]:
    view = memoryview(data)
    return [hashlib.sha256(view[i : i + block]).hexdigest() for i in range(0, len(data), block)]


# ---- writing a backup ---------------------------------------------------------------------


def _chunk_data(fd: int, index: int) -> bytes | None:
    """Chunk ``index`` of an open file, or None when it holds only zeros (holes are not read)."""
    start = index * CHUNK
    if next(extents(fd, start, start + CHUNK), None) is None:
        return None
    data = os.pread(fd, CHUNK, start)
    return None if data == ZEROS[: len(data)] else data


def _chunk_entry(
    site: Region, backup_id: str, index: int, data: bytes | None, inherited: Json | None
) -> Json | None:
    """The chunk list entry of ``data``: None for zeros, the parent's entry when every block
    equals the parent's at that position, else a new entry whose chunk is written to the store."""
    if data is None:
        return None
    hashes = _block_hashes(data)
    if inherited is not None and inherited["sha256"] == hashes:
        return inherited
    _chunk_path(site, backup_id, index).write_bytes(data)
    return {"owner": backup_id, "sha256": hashes}


def _write_chunks(
    site: Region, backup: Json, reader: Path, parent: list[Json | None], fail_at: float | None
) -> tuple[list[Json | None], int]:
    """Chunk the source into the store; returns the chunk list and how many chunks it stored."""
    total = backup["size"] * GIB
    count = total // CHUNK
    chunks: list[Json | None] = []
    stored = 0
    reported = time.monotonic()
    (store_dir(site, backup["id"]) / "chunks").mkdir(parents=True, exist_ok=True)
    with reader.open("rb") as handle:
        for index in range(count):
            inherited = parent[index] if index < len(parent) else None
            entry = _chunk_entry(
                site, backup["id"], index, _chunk_data(handle.fileno(), index), inherited
            )
            if entry is not None and entry["owner"] == backup["id"]:
                stored += 1
            chunks.append(entry)
            done = (index + 1) * CHUNK
            if fail_at is not None and done >= fail_at * total:
                raise InjectedFailure(
                    f"injected fault: the backup failed after {done} of its {total} bytes "
                    f"(backup_failure_at={fail_at})"
                )
            if time.monotonic() - reported >= PROGRESS_EVERY:
                progress = f"{done * 100 // total}%"
                update(site, "backup", backup["id"], progress=progress, object_count=stored)
                reported = time.monotonic()
    return chunks, stored


def _metadata(site: Region, backup: Json) -> Json:
    """What the store keeps of a finished backup, for any site to show and restore it."""
    return {
        **{key: backup[key] for key in SHARED_FIELDS},
        "format": 1,
        "site": site.config.name,
        "project_id": backup["_project_id"],
        "parent_id": backup["_parent"],
        "chunk_size": CHUNK,
        "block_size": BLOCK,
        "bootable": backup["_bootable"],
    }


def end_backup(site: Region, backup_id: str, **fields: Any) -> None:
    """Record how a backup ended and give its source back the status it had before."""
    with site.state.lock:
        backup = update(site, "backup", backup_id, **fields)
        if backup is None:
            return
        kind, source_id = backup["_source"]
        source = site.state.get(kind, source_id)
        if source is not None and source["status"] == "backing-up":
            source["status"] = source.pop("_previous_status", "available")
            save(site, kind, source)


def run_backup(site: Region, backup_id: str, fail_at: float | None) -> None:
    """The job writing a backup (recorded with status ``creating``) into the store."""
    backup = site.state.get("backup", backup_id)
    if backup is None or backup["status"] != "creating":
        return
    kind, source_id = backup["_source"]
    staging = data_file(site, "staging", backup_id)
    directory = store_dir(site, backup_id)
    try:
        if kind == "volume":
            with site.state.lock:  # the point in time the backup holds
                sparse_copy(data_file(site, "volume", source_id), staging, backup["size"] * GIB)
        reader = staging if kind == "volume" else data_file(site, "snapshot", source_id)
        parent = _store_chunks(site, backup["_parent"]) if backup["_parent"] else []
        chunks, backup["object_count"] = _write_chunks(site, backup, reader, parent, fail_at)
        write_json(directory / "sha256.json", {"chunks": chunks})
        write_json(directory / "metadata.json", _metadata(site, backup))
    except Exception as error:
        shutil.rmtree(directory, ignore_errors=True)
        reason = str(error) if isinstance(error, InjectedFailure) else repr(error)
        end_backup(site, backup_id, status="error", fail_reason=reason)
    else:
        end_backup(
            site,
            backup_id,
            status="available",
            progress="100%",
            object_count=backup["object_count"],
        )
    finally:
        staging.unlink(missing_ok=True)


def remove_backup(site: Region, backup_id: str) -> None:
    """Remove a backup from the store and the site; its metadata goes first, so no site can
    import or restore it from then on."""
    directory = store_dir(site, backup_id)
    (directory / "metadata.json").unlink(missing_ok=True)
    shutil.rmtree(directory, ignore_errors=True)
    site.state.delete("backup", backup_id)


# ---- reading a backup ---------------------------------------------------------------------


def restore_chunks(site: Region, backup_id: str, target: Path, size: int) -> Json:
    """Write the backup's chunks (walking its chain) into a new ``size``-byte file ``target``,
    verifying every block; returns the backup's metadata."""
    chain = backup_chain(site, backup_id)
    owners = {metadata["id"] for metadata in chain}
    chunk_size, block = chain[0]["chunk_size"], chain[0]["block_size"]
    with replacing(target, size) as fd:
        for index, entry in enumerate(_store_chunks(site, backup_id)):
            if entry is None:
                continue
            if entry["owner"] not in owners:
                raise ValueError(f"chunk {index} names backup {entry['owner']}, not in the chain")
            data = _chunk_path(site, entry["owner"], index).read_bytes()
            if _block_hashes(data, block) != entry["sha256"]:
                raise ValueError(f"chunk {index} of backup {entry['owner']} fails its sha256 check")
            os.pwrite(fd, data, index * chunk_size)
    return chain[0]


def imported(metadata: Json) -> Json:
    """The local record of a backup another site wrote to the shared store."""
    project = metadata["project_id"]
    return {
        **{key: metadata[key] for key in SHARED_FIELDS},
        "status": "available",
        "progress": "100%",
        "fail_reason": None,
        "updated_at": now_iso(),
        "os-backup-project-attr:project_id": project,
        "_project_id": project,
        "_created": time.time_ns(),
        "_parent": metadata["parent_id"],
        "_bootable": metadata["bootable"],
        "_imported_from": metadata["site"],
    }
