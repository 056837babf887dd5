"""An image's bytes, under ``<data_dir>/images``: an upload streams to ``<id>.part`` computing
its md5 ``checksum`` and sha512 ``os_hash_value`` on the way and becomes ``<id>`` once the
image is active; the interoperable import (``glance-direct``) stages to ``<id>.stage`` first,
then lands the bytes the same way; ``joined`` writes files one after another to ``<id>.part``
with the same digests, hashing in two threads (Nova's createImage, the ``web-download``
import). ``image_file`` is what the volume service reads."""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import Request

from cascade.identity import AuthContext
from cascade_sim.errors import SimError
from cascade_sim.image import quota
from cascade_sim.image.records import create, mine, store
from cascade_sim.region import Region

Json = dict[str, Any]

IMPORT_METHODS = ("glance-direct", "web-download")


@dataclass(frozen=True)
class Digest:
    md5: str
    sha512: str
    size: int


class _Hashing:
    """Glance's two hashes and the size of bytes seen so far."""

    def __init__(self) -> None:
        self.md5, self.sha512, self.size = hashlib.md5(usedforsecurity=False), hashlib.sha512(), 0

    def update(self, chunk: bytes) -> bytes:
        self.md5.update(chunk)
        self.sha512.update(chunk)
        self.size += len(chunk)
        return chunk

    def digest(self) -> Digest:
        return Digest(self.md5.hexdigest(), self.sha512.hexdigest(), self.size)


def _image_dir(site: Region) -> Path:
    directory = site.config.data_dir / "images"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def data_path(site: Region, image_id: str) -> Path:
    return _image_dir(site) / image_id


def stage_path(site: Region, image_id: str) -> Path:
    return _image_dir(site) / f"{image_id}.stage"


def part_path(site: Region, image_id: str) -> Path:
    return _image_dir(site) / f"{image_id}.part"


def remove_files(site: Region, image_id: str) -> None:
    for path in (data_path, stage_path, part_path):
        path(site, image_id).unlink(missing_ok=True)


def image_file(site: Region, image_id: str) -> Path | None:
    """The bytes of an active image, or None when it is unknown or has no data."""
    image = site.state.get("image", image_id)
    if image is None or image["status"] != "active":
        return None
    path = data_path(site, image["id"])
    return path if path.exists() else None


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip()


def _require_octet_stream(request: Request) -> None:
    given = content_type(request)
    if given != "application/octet-stream":
        message = f"Unsupported Content-Type {given!r}: send application/octet-stream."
        raise SimError(415, message)


def begin(site: Region, caller: AuthContext, image_id: str, allowed: str, status: str) -> str:
    """Move an image from ``allowed`` status to ``status`` before bytes arrive; its owner."""
    with site.state.lock:
        image = mine(site, caller, image_id)
        if image["status"] != allowed:
            message = f"Image status transition from {image['status']} to {status} is not allowed"
            raise SimError(409, message)
        if not (image["disk_format"] and image["container_format"]):
            message = "Properties disk_format, container_format must be set prior to saving data."
            raise SimError(400, message)
        image["status"] = status
        store(site, image)
        return str(image["owner"])


def set_status(site: Region, image_id: str, status: str) -> None:
    with site.state.lock:
        image = site.state.get("image", image_id)
        if image is not None:
            image["status"] = status
            store(site, image)


async def _receive(
    site: Region, request: Request, image_id: str, target: Path, room: int | None
) -> Digest:
    """Stream the request body to ``target``, at most ``room`` bytes (the storage quota's;
    None: no limit); on failure the image is queued again."""
    hashing, refused = _Hashing(), None
    try:
        declared = int(request.headers.get("content-length") or 0)
        if room is not None and declared > room:
            refused = quota.exceeded(declared, room)
        with target.open("wb") as handle:
            async for chunk in request.stream():
                if refused is not None:
                    continue  # read and dropped: the client gets the answer, not a reset
                handle.write(hashing.update(chunk))
                if room is not None and hashing.size > room:
                    refused = quota.exceeded(max(declared, hashing.size), room)
        if refused is not None:
            raise refused
    except BaseException:
        target.unlink(missing_ok=True)
        set_status(site, image_id, "queued")
        raise
    return hashing.digest()


async def receive(
    site: Region,
    caller: AuthContext,
    image_id: str,
    request: Request,
    status: str,
    where: Callable[[Region, str], Path],
    *,
    counted: bool,
) -> tuple[Path, Digest]:
    """Bytes for a queued image, which is ``status`` while they arrive: the file they are in
    (``where`` the image's bytes go) and their digest. Bytes ``counted`` against the storage
    quota (an upload's, not a stage's) beyond it are refused, 413."""
    _require_octet_stream(request)
    owner = begin(site, caller, image_id, "queued", status)
    room = quota.room(site, owner, image_id) if counted else None
    target = where(site, image_id)
    return target, await _receive(site, request, image_id, target, room)


def joined(sources: list[Path], target: Path) -> Digest:
    """``sources`` concatenated into ``target``; the digest of what was written. One pass over
    the bytes, mapped rather than read: md5 and sha512 hash each source in two threads at once
    (hashlib lets go of the GIL) while it is written."""
    md5, sha512, size = hashlib.md5(usedforsecurity=False), hashlib.sha512(), 0
    with ThreadPoolExecutor(2, thread_name_prefix="image-hash") as pool, target.open("wb") as out:
        for source in sources:
            with source.open("rb") as handle:
                length = os.fstat(handle.fileno()).st_size
                if not length:
                    continue  # an empty file cannot be mapped, and adds nothing
                mapped = mmap.mmap(handle.fileno(), length, access=mmap.ACCESS_READ)
                with mapped, memoryview(mapped) as view:
                    hashing = [pool.submit(md5.update, view), pool.submit(sha512.update, view)]
                    try:
                        out.write(view)
                    finally:
                        wait(hashing)  # they hold the view until done
                size += length
    return Digest(md5.hexdigest(), sha512.hexdigest(), size)


def copied_image(site: Region, caller: AuthContext, source_id: str, attributes: Json) -> str:
    """A new active image of the caller's whose bytes are a copy of image ``source_id``'s,
    with ``attributes`` (name, properties); its id. What Nova's createImage makes of a
    server booted from that image (the emulator keeps no root disk of its own)."""
    source = image_file(site, source_id)
    if source is None:
        raise SimError(409, f"Image {source_id} has no data to snapshot the server from.")
    original = site.state.get("image", source_id) or {}
    formats = {k: original.get(k) for k in ("disk_format", "container_format")}
    image = create(site, caller, {**attributes, **formats, "visibility": "private"})
    partial = part_path(site, image["id"])
    activate(site, image["id"], joined([source], partial), partial)
    return str(image["id"])


def _still_there(site: Region, image_id: str, source: Path) -> Json:
    image = site.state.get("image", image_id)
    if image is None:
        source.unlink(missing_ok=True)
        message = (
            f"Image {image_id} could not be found after upload. "
            "The image may have been deleted during the upload."
        )
        raise SimError(410, message)
    return image


def activate(site: Region, image_id: str, digest: Digest, source: Path) -> None:
    """The bytes in ``source`` become the image's data, and the image active."""
    with site.state.lock:
        image = _still_there(site, image_id, source)
        source.replace(data_path(site, image_id))
        image.pop("_staged", None)
        image.update(
            status="active",
            checksum=digest.md5,
            os_hash_algo="sha512",
            os_hash_value=digest.sha512,
            size=digest.size,
        )
        store(site, image)


def keep_staged(site: Region, image_id: str, digest: Digest, source: Path) -> None:
    with site.state.lock:
        image = _still_there(site, image_id, source)
        image["_staged"] = asdict(digest)
        store(site, image)


def import_method(raw: Any) -> Json:
    """The ``method`` of an import request body, whose ``name`` is one the site supports."""
    allowed = {"method", "stores", "all_stores", "all_stores_must_succeed"}  # one store here
    method = raw.get("method") if isinstance(raw, dict) and not set(raw) - allowed else None
    name = method.get("name") if isinstance(method, dict) else None
    if not isinstance(method, dict) or name not in IMPORT_METHODS:
        supported = list(IMPORT_METHODS)
        raise SimError(400, f"Import method {name!r} is not supported; use {supported}.")
    return method


def staged_digest(site: Region, caller: AuthContext, image_id: str) -> Digest:
    """The digest of the bytes staged for ``glance-direct``; the image is importing. Bytes
    beyond the storage quota are refused (413) and the image stays staged."""
    with site.state.lock:
        image = mine(site, caller, image_id)
        if image["status"] != "uploading" or "_staged" not in image:
            message = "Image needs to be staged before 'glance-direct' method can be used"
            raise SimError(409, message)
        staged = Digest(**image["_staged"])
        quota.require_room(site, image["owner"], image_id, staged.size)
        image["status"] = "importing"
        store(site, image)
        return staged
