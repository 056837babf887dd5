"""Filling a new volume from an image, a snapshot, another volume or a backup: the job that
copies the bytes. The job is recorded on the volume (``_job``) before it runs, so that
``recover`` redoes it from the start after a crash."""

from __future__ import annotations

import logging
from pathlib import Path

from cascade_sim import image
from cascade_sim.errors import SimError
from cascade_sim.region import Region
from cascade_sim.volume.backup_store import restore_chunks
from cascade_sim.volume.disk import GIB, data_file, sparse_copy
from cascade_sim.volume.records import Json, bootable_of, save, update
from cascade_sim.volume.tracking import allocated_blocks, mark_written

log = logging.getLogger(__name__)


def image_path(site: Region, image_id: str) -> Path:
    """The file of an image with data, else a 400."""
    path = image.image_file(site, image_id)
    if path is None:
        raise SimError(
            400, f"Invalid imageRef: image {image_id} could not be found or has no data."
        )
    return path


def fill_from_image(site: Region, volume: Json, image_id: str) -> Json:
    """Copy the image into the volume, recording the blocks written (Nova's boot volumes are
    filled here too); returns the fields the volume gains."""
    target = data_file(site, "volume", volume["id"])
    sparse_copy(image_path(site, image_id), target, volume["size"] * GIB)
    mark_written(volume, allocated_blocks(target))
    return {"bootable": "true", "volume_image_metadata": {"image_id": image_id}}


def _fill_from_copy(site: Region, volume: Json, kind: str, source_id: str) -> Json:
    with site.state.lock:  # a point-in-time copy: no write lands while it is taken
        source = site.state.get(kind, source_id)
        if source is None:
            raise LookupError(f"{kind} {source_id} no longer exists")
        target = data_file(site, "volume", volume["id"])
        sparse_copy(data_file(site, kind, source_id), target, volume["size"] * GIB)
    return {"bootable": bootable_of(source)}


def _fill_from_backup(site: Region, volume: Json, backup_id: str) -> Json:
    target = data_file(site, "volume", volume["id"])
    metadata = restore_chunks(site, backup_id, target, volume["size"] * GIB)
    return {"bootable": metadata["bootable"]}


def _fill(site: Region, volume: Json, job: Json) -> Json:
    if job["kind"] == "image":
        return fill_from_image(site, volume, job["source"])
    if job["kind"] == "restore":
        return _fill_from_backup(site, volume, job["source"])
    return _fill_from_copy(site, volume, job["kind"], job["source"])


def run_volume_job(site: Region, volume_id: str) -> None:
    """Fill the volume as its ``_job`` says; it ends available, or in error. Every block that
    held data before or after the fill is recorded as written."""
    volume = site.state.get("volume", volume_id)
    if volume is None or "_job" not in volume:
        return
    job = volume["_job"]
    target = data_file(site, "volume", volume_id)
    before = allocated_blocks(target)  # a restore into a volume may turn them into holes
    try:
        fields = {"status": "available", **_fill(site, volume, job)}
    except Exception as error:
        log.warning("filling volume %s from %s %s failed: %r", volume_id, *job.values(), error)
        fields = {"status": "error_restoring" if job["kind"] == "restore" else "error"}
    with site.state.lock:
        current = site.state.get("volume", volume_id)
        if current is not None:
            current.pop("_job", None)
            current.update(fields)
            mark_written(current, before | allocated_blocks(target))
            save(site, "volume", current)
        if job["kind"] == "restore":
            update(site, "backup", job["source"], status="available")
