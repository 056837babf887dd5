"""Copying one image from a site's image service to another site's, resumably and verified.

Glance takes no partial uploads, so the copy is staged in the target site's object store:
the source image is read in ranged GETs of ``chunk_bytes``, each chunk PUT (with its md5 as
``ETag``, which the store checks) as the segment ``<source image id>/segments/<seq:08d>``
of the container ``cascade-image-staging``, and after each segment a small ledger
(``<source image id>/ledger.json``: the source, its size and hash, the chunk size, each
staged segment's md5) is written. A copy that was interrupted (the process killed, the
target down) lists the staged segments and skips those the ledger names whose ETag and size
still match; the rest are sent. Then a Dynamic Large Object (``<source image id>/image``)
joins the segments, the target image imports it with ``web-download`` from the target's own
store, and once it is active its ``checksum`` and ``os_hash_value`` must equal the source's
(``ImageCopyMismatch`` if not). The staged objects are deleted once the import is done,
verified or not (after a mismatch the next copy starts from zero).

The target image carries the source's metadata (name, formats, visibility, min_disk/min_ram,
protected, os_hidden, tags and extra properties; the owner is the target connection's
project) and the property ``cascade_source_image`` = ``<source site>/<image id>``, by which a
later call finds it again: a copy is idempotent. The bandwidth limit is a token bucket over
the bytes sent (``ByteRateLimit``), one per target site and rate in the process
(``site_limit``), so concurrent copies to a site share it.

Every request goes through the sites' ``SiteDriver.call`` (openstacksdk connections, with
Cascade's retry of transient failures). May import ``cascade.sites``, ``cascade.retry``,
``cascade.errors`` and openstacksdk; the engine's workflow step that calls ``copy_image``
keeps its own progress rows.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection

from cascade.errors import BadRequest, CascadeError
from cascade.retry import Backoff, Interrupted, until_deadline
from cascade.sites.driver import SiteDriver

Json = dict[str, Any]
Progress = Callable[[int, int], None]

STAGING_CONTAINER = "cascade-image-staging"
SOURCE_PROPERTY = "cascade_source_image"
IMPORT_DEADLINE = 600.0  # seconds an import may take before the copy fails
IMPORT_POLL = Backoff(first=0.2, cap=2.0)
NOT_COPIED = {
    "id", "status", "checksum", "os_hash_algo", "os_hash_value", "size", "virtual_size",
    "created_at", "updated_at", "self", "file", "schema", "direct_url", "locations", "stores",
    "owner",
}  # fmt: skip
BUSY = ("saving", "importing", "uploading")


class ImageCopyFailed(CascadeError):
    """An image could not be copied (no data at the source, an import that failed)."""

    status = 502


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


class ByteRateLimit:
    """A token bucket over bytes, safe to share between threads: ``take(n)`` returns once
    ``n`` bytes fit the rate, sleeping (never spinning) for the deficit; up to one second's
    worth may go at once. A set ``stop`` cuts a wait short with ``Interrupted``."""

    def __init__(self, bytes_per_s: float) -> None:
        if bytes_per_s <= 0:
            raise BadRequest(f"A bandwidth limit must be positive, not {bytes_per_s}.")
        self.rate = bytes_per_s
        self._tokens = bytes_per_s
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self, count: int, stop: threading.Event | None = None) -> None:
        with self._lock:  # each taker owes its share; the waits happen outside the lock
            now = time.monotonic()
            self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate) - count
            self._last = now
            wait = -self._tokens / self.rate
        if wait <= 0:
            return
        if stop is None:
            time.sleep(wait)
        elif stop.wait(wait):
            raise Interrupted


_SITE_LIMITS: dict[tuple[str, float], ByteRateLimit] = {}
_SITE_LIMITS_LOCK = threading.Lock()


def site_limit(site: str, bytes_per_s: float) -> ByteRateLimit:
    """The one bucket of this process for copies to ``site`` at ``bytes_per_s``: concurrent
    copies to a site share its bandwidth."""
    with _SITE_LIMITS_LOCK:
        return _SITE_LIMITS.setdefault((site, bytes_per_s), ByteRateLimit(bytes_per_s))


@dataclass(frozen=True)
class _Staging:
    """Where one source image's chunks are staged at the target."""

    source_id: str

    @property
    def segments(self) -> str:
        return f"{self.source_id}/segments/"

    @property
    def ledger(self) -> str:
        return f"{self.source_id}/ledger.json"

    @property
    def manifest(self) -> str:
        return f"{self.source_id}/image"

    def segment(self, seq: int) -> str:
        return f"{self.segments}{seq:08d}"


def _checked(response: Any) -> Any:
    sdk_exceptions.raise_from_response(response)
    return response


def _image(site: SiteDriver, image_id: str) -> Json:
    found: Json = site.call(
        f"show image {image_id}", lambda c: _checked(c.image.get(f"/images/{image_id}")).json()
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
        lambda c: _checked(c.image.get("/images", params={SOURCE_PROPERTY: key})).json()["images"],
    )
    usable = [i for i in images if i["status"] in ("queued", "active", *BUSY)]
    if usable:
        return usable[0]
    body = _copied_attributes(source_image, key)
    created: Json = target.call(
        f"create the copy of image {key}",
        lambda c: _checked(c.image.post("/images", json=body)).json(),
    )
    return created


# -- staging --------------------------------------------------------------------------------


def _store(target: SiteDriver, what: str, method: str, name: str, **kwargs: Any) -> Any:
    path = f"/{STAGING_CONTAINER}/{name}" if name else f"/{STAGING_CONTAINER}"
    return target.call(what, lambda c: _checked(c.object_store.request(path, method, **kwargs)))


def _ledger(target: SiteDriver, staging: _Staging, header: Json) -> Json:
    """The staged segments the ledger vouches for, if it is this copy's; else none."""

    def read(c: Connection) -> Json | None:
        answer = c.object_store.get(f"/{STAGING_CONTAINER}/{staging.ledger}")
        if answer.status_code == 404:
            return None
        found: Json = _checked(answer).json()
        return found

    ledger = target.call(f"read the staging ledger of {header['source']}", read)
    if ledger is None or any(ledger.get(k) != v for k, v in header.items()):
        return {}
    segments: Json = ledger.get("segments", {})
    return segments


def _listed_segments(target: SiteDriver, staging: _Staging) -> dict[str, Json]:
    listed: dict[str, Json] = {}
    marker = ""
    while True:
        params = {"format": "json", "prefix": staging.segments, "marker": marker}
        page = _store(target, "list staged segments", "GET", "", params=params).json()
        listed.update({entry["name"]: entry for entry in page})
        if not page:
            return listed
        marker = page[-1]["name"]


def _trusted(target: SiteDriver, staging: _Staging, header: Json, count: int) -> Json:
    """Segments staged earlier that need not be sent again: in the ledger, with the same
    ETag and size in the store. Staged segments past ``count`` are deleted."""
    vouched = _ledger(target, staging, header)
    listed = _listed_segments(target, staging)
    for name in listed:
        if int(name.rsplit("/", 1)[-1]) >= count:
            _store(target, f"delete stale segment {name}", "DELETE", name)
    size, chunk = header["size"], header["chunk_bytes"]
    return {
        seq: md5
        for seq, md5 in vouched.items()
        if (found := listed.get(staging.segment(int(seq)))) is not None
        and (found["hash"], found["bytes"]) == (md5, min(chunk, size - int(seq) * chunk))
    }


def _read_range(source: SiteDriver, image_id: str, start: int, end: int) -> bytes:
    def read(c: Connection) -> bytes:
        headers = {"Range": f"bytes={start}-{end - 1}"}
        answer = _checked(c.image.get(f"/images/{image_id}/file", headers=headers))
        if answer.status_code != 206 or len(answer.content) != end - start:
            raise ImageCopyFailed(
                f"site {source.access.name}: image {image_id} answered bytes {start}-{end - 1} "
                f"with HTTP {answer.status_code} and {len(answer.content)} bytes"
            )
        body: bytes = answer.content
        return body

    return source.call(f"read bytes {start}-{end - 1} of image {image_id}", read)


@dataclass
class _Stager:
    """Sends the chunks of one image to the target's staging container."""

    source: SiteDriver
    target: SiteDriver
    image_id: str
    staging: _Staging
    header: Json
    limit: ByteRateLimit | None

    def send(self, seq: int, start: int, end: int, staged: Json) -> int:
        chunk = _read_range(self.source, self.image_id, start, end)
        if self.limit is not None:
            self.limit.take(len(chunk), self.target.stop)
        md5 = hashlib.md5(chunk, usedforsecurity=False).hexdigest()
        headers = {"ETag": md5, "Content-Type": "application/octet-stream"}
        name = self.staging.segment(seq)
        _store(self.target, f"stage {name}", "PUT", name, data=chunk, headers=headers)
        staged[str(seq)] = md5  # a segment's size follows from its number and the header
        ledger = json.dumps({**self.header, "segments": staged}).encode()
        json_type = {"Content-Type": "application/json"}
        _store(
            self.target,
            "write the staging ledger",
            "PUT",
            self.staging.ledger,
            data=ledger,
            headers=json_type,
        )
        return len(chunk)


def _stage(stager: _Stager, size: int, chunk_bytes: int, on_progress: Progress | None) -> int:
    """Stage every chunk not staged yet; the bytes sent."""
    count = -(-size // chunk_bytes)
    _store(stager.target, "create the staging container", "PUT", "")
    staged = _trusted(stager.target, stager.staging, stager.header, count)
    sent = done = 0
    for seq in range(count):
        start, end = seq * chunk_bytes, min(size, (seq + 1) * chunk_bytes)
        if str(seq) not in staged:
            sent += stager.send(seq, start, end, staged)
        done += end - start
        if on_progress is not None:
            on_progress(done, size)
    return sent


def _unstage(target: SiteDriver, staging: _Staging) -> None:
    names = [*_listed_segments(target, staging), staging.manifest, staging.ledger]
    for name in names:
        _store(target, f"delete staged {name}", "DELETE", name)


# -- import and verification ----------------------------------------------------------------


class _StillImporting(Exception):
    """The image is not active yet (a control-flow signal for the wait)."""


def _import(target: SiteDriver, staging: _Staging, image_id: str) -> None:
    manifest = {"X-Object-Manifest": f"{STAGING_CONTAINER}/{staging.segments}"}
    _store(
        target,
        "write the staged image's manifest",
        "PUT",
        staging.manifest,
        data=b"",
        headers=manifest,
    )

    def start(c: Connection) -> None:
        store = c.object_store.get_endpoint()
        if store is None:
            raise ImageCopyFailed(f"site {target.access.name} lists no object store")
        uri = f"{store.rstrip('/')}/{STAGING_CONTAINER}/{staging.manifest}"
        body = {"method": {"name": "web-download", "uri": uri}}
        _checked(c.image.post(f"/images/{image_id}/import", json=body))

    target.call(f"import image {image_id} from the staged copy", start)


def _wait_active(target: SiteDriver, image_id: str) -> Json:
    def poll() -> Json:
        image = _image(target, image_id)
        if image["status"] in BUSY:
            raise _StillImporting(image["status"])
        if image["status"] != "active":
            raise ImageCopyFailed(
                f"site {target.access.name}: import of image {image_id} ended {image['status']}"
            )
        return image

    try:
        return until_deadline(
            IMPORT_POLL,
            IMPORT_DEADLINE,
            lambda e: isinstance(e, _StillImporting),
            poll,
            target.stop,
        )
    except _StillImporting as still:
        raise ImageCopyFailed(
            f"site {target.access.name}: image {image_id} still {still} after "
            f"{IMPORT_DEADLINE:.0f} s"
        ) from None


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
    chunk_bytes: int = 8 << 20,
    on_progress: Progress | None = None,
    limit_bytes_per_s: float | None = None,
) -> CopyResult:
    """Copy image ``image_id`` from ``source`` to ``target`` with its metadata, verified;
    resumes a copy interrupted earlier from the chunks the target confirmed. ``on_progress``
    is called after every chunk with (bytes done including those already staged, total)."""
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
    staging = _Staging(image_id)
    header = {
        "source": key,
        "os_hash_value": original["os_hash_value"],
        "size": original["size"],
        "chunk_bytes": chunk_bytes,
    }
    limit = None if limit_bytes_per_s is None else site_limit(target.access.name, limit_bytes_per_s)
    stager = _Stager(source, target, image_id, staging, header, limit)
    sent = _stage(stager, int(original["size"]), chunk_bytes, on_progress)
    _import(target, staging, copy["id"])
    copy = _wait_active(target, copy["id"])
    try:
        _verified(source, target, original, copy)
    finally:
        _unstage(target, staging)
    return _result(copy, sent)
