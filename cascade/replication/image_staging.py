"""Where an image copy stages its chunks at the target, and what the target has confirmed.

Glance takes no partial uploads, so a copy stages the source image's chunks in the target
site's object store, in the container ``cascade-image-staging``, under the source image's
id: the segments ``<id>/segments/<seq:08d>``, a ledger ``<id>/ledger.json`` (which copy the
segments belong to: the source, its size, ``os_hash_value`` and the chunk size; written once)
and, once every segment is there, the Dynamic Large Object ``<id>/image`` that reads as them
in name order. The segments the store lists are the record of what the target confirmed:
nothing is written per chunk besides the chunk. This module owns those names, the ledger
(``Ledger``: which staged segments a resumed copy may trust), listing and removing what is
staged; ``image_transfer`` moves the bytes and ``image_copy`` imports and verifies them.

Every request goes through the target's ``SiteDriver.call``. May import ``cascade.sites``,
``cascade.errors`` and openstacksdk.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote

from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection

from cascade.errors import CascadeError
from cascade.sites.driver import SiteDriver

Json = dict[str, Any]

STAGING_CONTAINER = "cascade-image-staging"
DELETERS = 4  # segment deletions at once


class ImageCopyFailed(CascadeError):
    """An image could not be copied (no data at the source, an import that failed)."""

    status = 502


def checked(response: Any) -> Any:
    """The response, or openstacksdk's exception for its error status."""
    sdk_exceptions.raise_from_response(response)
    return response


@dataclass(frozen=True)
class Staging:
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


def store(
    target: SiteDriver, what: str, method: str, name: str, missing_ok: bool = False, **kwargs: Any
) -> Any:
    """One request to the staging container (``name`` empty) or an object in it; with
    ``missing_ok`` a 404 is answered as it is (None) instead of raised."""
    path = f"/{STAGING_CONTAINER}/{name}" if name else f"/{STAGING_CONTAINER}"

    def request(c: Connection) -> Any:
        response = c.object_store.request(path, method, **kwargs)
        return None if missing_ok and response.status_code == 404 else checked(response)

    return target.call(what, request)


def listed_segments(target: SiteDriver, staging: Staging) -> dict[str, Json]:
    """The staged segments in the store, by name (Swift's listing: ``hash``, ``bytes``); none
    without the container."""
    listed: dict[str, Json] = {}
    marker = ""
    while True:
        params = {"format": "json", "prefix": staging.segments, "marker": marker}
        answer = store(target, "list staged segments", "GET", "", True, params=params)
        page = [] if answer is None else answer.json()
        listed.update({entry["name"]: entry for entry in page})
        if not page:
            return listed
        marker = page[-1]["name"]


@dataclass
class Ledger:
    """Which staged segments belong to this copy. The ledger object holds the copy's header
    (the source, its size and ``os_hash_value``, the chunk size) and is written once, before
    any segment; the segments the store confirmed are the record of what was sent: the store
    keeps a segment only once its whole body arrived, so a listed segment of the right size
    is a chunk of this copy (its bytes are checked with the whole image's, after the import).
    A different header (another source version or chunk size) means nothing staged is this
    copy's: every segment is deleted before the new header is written."""

    target: SiteDriver
    staging: Staging
    header: Json

    def chunk_size(self, seq: int) -> int:
        size, chunk = int(self.header["size"]), int(self.header["chunk_bytes"])
        return min(chunk, size - seq * chunk)

    def resume(self, count: int) -> set[int]:
        """The chunks an earlier run of this copy staged (of ``count``). Segments past
        ``count``, or all of them if the ledger is another copy's, are deleted."""

        def read(c: Connection) -> Json | None:
            answer = c.object_store.get(f"/{STAGING_CONTAINER}/{self.staging.ledger}")
            if answer.status_code == 404:
                return None
            found: Json = checked(answer).json()
            return found

        earlier = self.target.call(f"read the staging ledger of {self.header['source']}", read)
        mine = earlier is not None and all(earlier.get(k) == v for k, v in self.header.items())
        staged: set[int] = set()
        stale: list[str] = []
        for name, entry in listed_segments(self.target, self.staging).items():
            seq = int(name.rsplit("/", 1)[-1])
            if mine and seq < count and int(entry["bytes"]) == self.chunk_size(seq):
                staged.add(seq)
            else:
                stale.append(name)
        if stale:
            delete_staged(self.target, stale)
        if not mine:
            body = json.dumps(self.header).encode()
            json_type = {"Content-Type": "application/json"}
            what = "write the staging ledger"
            store(self.target, what, "PUT", self.staging.ledger, data=body, headers=json_type)
        return staged


def unstage(target: SiteDriver, staging: Staging) -> None:
    """Delete the staged segments, the manifest and the ledger (those not there, as before
    an unfinished copy's import, are fine)."""
    delete_staged(target, [*listed_segments(target, staging), staging.manifest, staging.ledger])


def delete_staged(target: SiteDriver, names: list[str]) -> None:
    """Delete staged objects (a missing one is fine): in one bulk delete per
    ``max_deletes_per_request`` where the store offers Swift's bulk delete (its ``/info``),
    else one request per object, ``DELETERS`` at a time."""
    limit = target.call("read the object store's capabilities", _bulk_delete_limit)
    if limit is None:
        _delete_each(target, names)
        return
    for start in range(0, len(names), limit):
        batch = names[start : start + limit]
        target.call(f"delete {len(batch)} staged objects", partial(_bulk_delete, names=batch))


def _bulk_delete_limit(c: Connection) -> int | None:
    """Paths per bulk delete the store takes, or None if it has no bulk delete."""
    try:
        offered = c.object_store.get_info().bulk_delete
    except sdk_exceptions.SDKException:  # no /info: a store without capabilities to offer
        return None
    return int(offered.get("max_deletes_per_request", 10000)) if offered else None


def _bulk_delete(c: Connection, names: list[str]) -> None:
    body = "\n".join(quote(f"/{STAGING_CONTAINER}/{name}") for name in names)
    headers = {"Content-Type": "text/plain", "Accept": "application/json"}
    report = checked(c.object_store.post("?bulk-delete", data=body, headers=headers)).json()
    if report.get("Errors"):
        raise ImageCopyFailed(f"the staged objects were not all deleted: {report['Errors']}")


def _delete_each(target: SiteDriver, names: list[str]) -> None:
    def delete(name: str) -> None:
        store(target, f"delete staged {name}", "DELETE", name, True)

    with ThreadPoolExecutor(DELETERS, thread_name_prefix="image-unstage") as pool:
        list(pool.map(delete, names))
