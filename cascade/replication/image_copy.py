"""Copying one image from a site's image service to another site's, resumably and verified.

Glance takes no partial uploads, so the copy is staged in the target site's object store
(``image_staging``: the segments, the ledger saying which copy they are of, the Dynamic
Large Object that joins them): ``image_transfer`` reads the source image in ranged GETs and puts
each chunk as a segment, several in flight at once. A copy that was interrupted (the process
killed, the target down) resumes from the segments the target's store confirmed (those of
this copy, as its ledger says); the rest are sent. Then the DLO joins the segments, the
target image imports it with ``web-download`` from the target's own store, and once it is
active its ``checksum`` and ``os_hash_value`` must equal the source's (``ImageCopyMismatch``
if not). The staged objects are deleted once the import is done, verified or not (after a
mismatch the next copy starts from zero).

The target image carries the source's metadata (name, formats, visibility, min_disk/min_ram,
protected, os_hidden, tags and extra properties; the owner is the target connection's
project) and the property ``cascade_source_image`` = ``<source site>/<image id>``, by which a
later call finds it again: a copy is idempotent. The bandwidth limit is ``image_transfer``'s
token bucket per target site and rate in the process, so concurrent copies to a site share it.

Every request goes through the sites' ``SiteDriver.call`` (openstacksdk connections, with
Cascade's retry of transient failures). May import ``cascade.replication.image_staging`` and
``image_transfer``, ``cascade.sites``, ``cascade.retry``, ``cascade.errors`` and
openstacksdk; the engine's workflow step that calls ``copy_image`` keeps its own progress
rows."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from openstack.connection import Connection

from cascade.errors import BadRequest
from cascade.replication.bandwidth import RateLimit
from cascade.replication.image_staging import (
    STAGING_CONTAINER,
    ImageCopyFailed,
    Ledger,
    Staging,
    checked,
    store,
    unstage,
)
from cascade.replication.image_transfer import CHUNK_BYTES, Progress, Sending, Transfer
from cascade.sites.driver import SiteDriver
from cascade.sites.waits import WaitFailed, until

Json = dict[str, Any]

SOURCE_PROPERTY = "cascade_source_image"
IMPORT_DEADLINE = 600.0  # seconds an import may take before the copy fails
NOT_COPIED = {
    "id", "status", "checksum", "os_hash_algo", "os_hash_value", "size", "virtual_size",
    "created_at", "updated_at", "self", "file", "schema", "direct_url", "locations", "stores",
    "owner",
}  # fmt: skip
BUSY = ("saving", "importing", "uploading")


class ImageCopyMismatch(ImageCopyFailed):
    """The target's bytes do not hash to the source's."""


@dataclass(frozen=True)
class CopyResult:
    target_image_id: str
    bytes_total: int
    bytes_sent: int  # by this call; a resumed copy sends only what was not staged
    bytes_skipped: int  # already staged (or already copied) before this call
    checksum: str
    os_hash_value: str


def _image(site: SiteDriver, image_id: str) -> Json:
    found: Json = site.call(
        f"show image {image_id}", lambda c: checked(c.image.get(f"/images/{image_id}")).json()
    )
    return found


# -- the target image -----------------------------------------------------------------------


def _source_key(source: SiteDriver, image_id: str) -> str:
    return f"{source.access.name}/{image_id}"


def _copied_attributes(image: Json, key: str) -> Json:
    kept = {k: v for k, v in image.items() if k not in NOT_COPIED and not k.startswith("os_glance")}
    return {**kept, SOURCE_PROPERTY: key}


def _target_image(target: SiteDriver, source_image: Json, key: str) -> Json:
    """The target's copy of the image, found by its source property or created queued."""
    images: list[Json] = target.call(
        f"find the copy of image {key}",
        lambda c: checked(c.image.get("/images", params={SOURCE_PROPERTY: key})).json()["images"],
    )
    usable = [i for i in images if i["status"] in ("queued", "active", *BUSY)]
    if usable:
        return usable[0]
    body = _copied_attributes(source_image, key)
    created: Json = target.call(
        f"create the copy of image {key}",
        lambda c: checked(c.image.post("/images", json=body)).json(),
    )
    return created


# -- import and verification ----------------------------------------------------------------


def _import(target: SiteDriver, staging: Staging, image_id: str) -> None:
    manifest = {"X-Object-Manifest": f"{STAGING_CONTAINER}/{staging.segments}"}
    what = "write the staged image's manifest"
    store(target, what, "PUT", staging.manifest, data=b"", headers=manifest)

    def start(c: Connection) -> None:
        endpoint = c.object_store.get_endpoint()
        if endpoint is None:
            raise ImageCopyFailed(f"site {target.access.name} lists no object store")
        uri = f"{endpoint.rstrip('/')}/{STAGING_CONTAINER}/{staging.manifest}"
        body = {"method": {"name": "web-download", "uri": uri}}
        checked(c.image.post(f"/images/{image_id}/import", json=body))

    target.call(f"import image {image_id} from the staged copy", start)


def _wait_active(target: SiteDriver, image_id: str) -> Json:
    def done(image: Json) -> bool:
        if image["status"] in BUSY:
            return False
        if image["status"] != "active":
            raise ImageCopyFailed(
                f"site {target.access.name}: import of image {image_id} ended {image['status']}"
            )
        return True

    def still(image: Json) -> str:
        return f"image {image_id} still {image['status']}"

    look = partial(_image, target, image_id)
    try:
        return until(look, done, still, IMPORT_DEADLINE, target.stop)
    except WaitFailed as failed:
        raise ImageCopyFailed(f"site {target.access.name}: {failed.message}") from None


def _verified(source: SiteDriver, target: SiteDriver, original: Json, copy: Json) -> None:
    fields = ("checksum", "os_hash_value")
    if any(copy.get(f) != original.get(f) for f in fields):
        raise ImageCopyMismatch(
            f"image {original['id']} copied from site {source.access.name} to site "
            f"{target.access.name} as {copy['id']} does not verify: checksum "
            f"{copy.get('checksum')} / os_hash_value {copy.get('os_hash_value')} at the "
            f"target, {original.get('checksum')} / {original.get('os_hash_value')} at the "
            f"source (delete image {copy['id']} at {target.access.name} to copy it again)"
        )


def _result(image: Json, sent: int) -> CopyResult:
    size = int(image["size"])
    return CopyResult(
        target_image_id=str(image["id"]),
        bytes_total=size,
        bytes_sent=sent,
        bytes_skipped=size - sent,
        checksum=str(image["checksum"]),
        os_hash_value=str(image["os_hash_value"]),
    )


def copy_image(
    source: SiteDriver,
    target: SiteDriver,
    image_id: str,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    on_progress: Progress | None = None,
    on_send: Sending | None = None,
    limit: RateLimit | None = None,
) -> CopyResult:
    """Copy image ``image_id`` from ``source`` to ``target`` with its metadata, verified;
    resumes a copy interrupted earlier from the chunks the target confirmed. ``on_progress``
    is called after every chunk with (bytes done including those already staged, total);
    ``on_send`` with each chunk's size as its upload starts."""
    if chunk_bytes <= 0:
        raise BadRequest(f"chunk_bytes must be positive, not {chunk_bytes}.")
    original = _image(source, image_id)
    if original["status"] != "active":
        raise ImageCopyFailed(
            f"site {source.access.name}: image {image_id} is {original['status']}, not active"
        )
    key = _source_key(source, image_id)
    copy = _target_image(target, original, key)
    if copy["status"] in BUSY:
        copy = _wait_active(target, copy["id"])
    if copy["status"] == "active":
        _verified(source, target, original, copy)
        return _result(copy, 0)
    staging = Staging(image_id)
    header = {
        "source": key,
        "os_hash_value": original["os_hash_value"],
        "size": original["size"],
        "chunk_bytes": chunk_bytes,
    }
    ledger = Ledger(target, staging, header)
    count = -(-int(original["size"]) // chunk_bytes)
    store(target, "create the staging container", "PUT", "")
    staged = ledger.resume(count)
    transfer = Transfer(source, target, image_id, ledger, limit, on_send)
    sent = transfer.stage(count, staged, on_progress)
    _import(target, staging, copy["id"])
    copy = _wait_active(target, copy["id"])
    try:
        _verified(source, target, original, copy)
    finally:
        unstage(target, staging)
    return _result(copy, sent)
