"""``/sim/v1/volumes/{id}``: read and write a volume's bytes and checksum it, as a guest of
the server it is attached to would. Writes take the state lock, so a snapshot or a group
snapshot sees none between its copies; writes to a volume of a quiesced server are refused."""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from cascade.api.keystone import Caller
from cascade.direct_io import pwrite_direct
from cascade.identity import AuthContext
from cascade_sim.common import RegionDep
from cascade_sim.errors import SimError
from cascade_sim.region import Region
from cascade_sim.volume.disk import GIB, data_file, file_sha256
from cascade_sim.volume.records import Json, load, require_status, save
from cascade_sim.volume.recovery import recovered
from cascade_sim.volume.tracking import blocks_of, mark_written

MAX_READ = 64 << 20
IO_STATUSES = {"available", "in-use", "backing-up"}

sim = APIRouter(prefix="/sim/v1/volumes", tags=["sim volumes"], dependencies=[Depends(recovered)])


def _io_volume(site: Region, caller: AuthContext, volume_id: str, offset: int, length: int) -> Json:
    volume = load(site, caller, "volume", volume_id)
    require_status("volume", volume, IO_STATUSES, "reading or writing its data")
    end = volume["size"] * GIB
    if offset + length > end:
        raise SimError(
            400,
            f"offset {offset} + length {length} is beyond the end of volume {volume_id} "
            f"({end} bytes).",
        )
    return volume


def _refuse_if_frozen(site: Region, volume: Json) -> None:
    for attachment in volume["attachments"]:
        server = site.state.get("server", attachment["server_id"] or "")
        if server is not None and server.get("_frozen"):
            raise SimError(
                409,
                f"Volume {volume['id']} is attached to server {server['id']}, which is "
                "quiesced: writes are refused until it is unquiesced.",
            )


def write_at(site: Region, volume: Json, offset: int, data: bytes, *, direct: bool = False) -> None:
    """Write ``data`` into the volume's file and record the blocks it changed (the caller
    holds the state lock and has checked the volume may be written). ``direct``: a
    restore's whole blocks, which go to the disk past the page cache where it allows (as a
    storage backend's writes would); a guest's writes stay in the cache, where the next
    snapshot copies them from."""
    path = data_file(site, "volume", volume["id"])
    if not (direct and pwrite_direct(path, data, offset)):
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)
    mark_written(volume, blocks_of(offset, len(data)))
    save(site, "volume", volume)


def _write_bytes(
    site: Region, caller: AuthContext, volume_id: str, offset: int, data: bytes
) -> None:
    with site.state.lock:  # so that a group snapshot sees no write between its copies
        volume = _io_volume(site, caller, volume_id, offset, len(data))
        _refuse_if_frozen(site, volume)
        write_at(site, volume, offset, data)


@sim.put(
    "/{volume_id}/data", status_code=204, response_class=Response, summary="Write bytes at offset"
)
async def write_volume_data(
    volume_id: str,
    request: Request,
    caller: Caller,
    site: RegionDep,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> None:
    data = await request.body()
    await run_in_threadpool(_write_bytes, site, caller, volume_id, offset, data)


@sim.get("/{volume_id}/data", response_class=Response, summary="Read length bytes at offset")
def read_volume_data(
    volume_id: str,
    caller: Caller,
    site: RegionDep,
    length: Annotated[int, Query(ge=0, le=MAX_READ)],
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    _io_volume(site, caller, volume_id, offset, length)
    with data_file(site, "volume", volume_id).open("rb") as handle:
        data = os.pread(handle.fileno(), length, offset)
    return Response(data, media_type="application/octet-stream")


@sim.get("/{volume_id}/checksum", summary="sha256 of the whole volume")
def volume_checksum(volume_id: str, caller: Caller, site: RegionDep) -> Json:
    volume = _io_volume(site, caller, volume_id, 0, 0)
    return {
        "sha256": file_sha256(data_file(site, "volume", volume_id)),
        "size": volume["size"] * GIB,
    }
