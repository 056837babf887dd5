"""Cascade's unfinished image copies at a target site whose source image is gone from the
source site: the target's image that is not active and carries ``cascade_source_image`` =
``<source site>/<id>`` (queued, or left importing), and what the copy staged under
``cascade-image-staging/<id>/``. A site's listing leaves such copies out (``image_kind``), so
no decision ever names them; this module picks them out of the unfinished copies that
listing set aside, for a policy's job and audit, and removes them.

A copy is a leftover only once the source site answers 404 for its image: one the source
still has (not active, or not among the policy's names) is not, and a source that cannot be
read (a site call failing, or any other answer) removes nothing, as everywhere in
replication. May import ``cascade.replication.image_staging``, ``cascade.sites`` and
openstacksdk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from openstack.connection import Connection

from cascade.replication.image_staging import Staging, unstage
from cascade.sites.driver import SiteCallFailed, SiteDriver


@dataclass(frozen=True)
class Leftover:
    """One source image's unfinished copy at the target: its name there, the source image's
    id, and the target's images of it (usually one)."""

    name: str
    source_id: str
    image_ids: tuple[str, ...]


@dataclass(frozen=True)
class Copy:
    """One of Cascade's unfinished copies at the target, as the target's listing shows it:
    its name, its image id there and its ``cascade_source_image``."""

    name: str
    image_id: str
    origin: str


def _by_source(copies: list[Copy], origin_prefix: str) -> dict[str, Leftover]:
    """The unfinished copies of images of the source (``origin_prefix``: the source site's
    name and ``/``), by source image id."""
    found: dict[str, Leftover] = {}
    for copy in copies:
        if copy.origin.startswith(origin_prefix):
            source_id = copy.origin[len(origin_prefix) :]
            earlier = found.get(source_id)
            ids = (*earlier.image_ids, copy.image_id) if earlier else (copy.image_id,)
            found[source_id] = Leftover(copy.name, source_id, ids)
    return found


def _gone(source: SiteDriver, image_id: str) -> bool:
    """Whether the source site answers 404 for the image (unreachable: not gone)."""
    try:
        status = source.call(
            f"show image {image_id}", lambda c: int(c.image.get(f"/images/{image_id}").status_code)
        )
    except SiteCallFailed:
        return False
    return status == 404


def leftovers(source: SiteDriver, copies: list[Copy], wanted_ids: set[str]) -> list[Leftover]:
    """Of the target's unfinished copies, those of source images gone from the source (not
    among ``wanted_ids``, the desired state's image ids, and 404 at the source)."""
    by_source = _by_source(copies, f"{source.access.name}/")
    return [
        copy
        for source_id, copy in sorted(by_source.items())
        if source_id not in wanted_ids and _gone(source, source_id)
    ]


def remover(target: SiteDriver, leftover: Leftover) -> Callable[[], None]:
    """Deletes the leftover's images at the target, then what it staged there."""

    def delete_images(c: Connection) -> None:
        for image_id in leftover.image_ids:
            c.image.delete_image(image_id, ignore_missing=True)

    def remove() -> None:
        target.call(f"delete the unfinished copy of image {leftover.source_id}", delete_images)
        unstage(target, Staging(leftover.source_id))

    return remove
