"""Images as replication sees them: the project's images by name, compared by their bytes
(``os_hash_value`` and size); only active images at the source are wanted. An image is not
written in one site call like the other kinds: each (image, target site) is a step of its own
(``image_steps``) wrapping ``image_copy.copy_image``, which carries the metadata over,
resumes an interrupted copy and verifies the checksums. A target's image whose bytes come
from another source image (an older version, or the site's own of that name) is replaced.

A site's listing leaves out Cascade's own unfinished copies (not active, carrying
``cascade_source_image``: a copy interrupted, or refused by the site's quota): such a copy is
not the site's image of that name but one still to finish, so the name reads as missing and
the next job or audit resumes it, whatever the conflict rule (``named`` finds them too; the
listing keeps them aside, ``SiteImages.unfinished``). An unfinished copy of a source image
since removed from the source (404 there) is a leftover (``image_leftovers``): the next job
deletes it and what it staged, as an item of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from openstack.connection import Connection

from cascade.db.replication_models import ReplicationPolicy
from cascade.engine.context import EngineContext, context
from cascade.errors import Internal
from cascade.replication.image_copy import SOURCE_PROPERTY
from cascade.replication.image_leftovers import Copy, leftovers, remover
from cascade.replication.kinds import Found, Kind, State, register


def _state(image: Any) -> State:
    return {
        "id": image.id,
        "os_hash_value": image.hash_value,
        "size": image.size,
        "status": image.status,
        "origin": (image.properties or {}).get(SOURCE_PROPERTY),
    }


def _project_images(c: Connection) -> Iterator[tuple[str, Found]]:
    """(name, image) for every image of the connection's project at the site."""
    project = c.current_project_id
    for image in c.image.images():
        if image.owner == project:
            yield image.name, Found(image.id, _state(image))


def _unfinished(found: Found) -> bool:
    return found.state["status"] != "active" and found.state["origin"] is not None


class SiteImages(dict[str, Found]):
    """A site's listing: the project's images by name, and beside them ``unfinished``,
    Cascade's unfinished copies (read in the same request)."""

    def __init__(self, images: list[tuple[str, Found]]) -> None:
        super().__init__((name, found) for name, found in images if not _unfinished(found))
        self.unfinished = [
            Copy(name, found.id, str(found.state["origin"]))
            for name, found in images
            if _unfinished(found)
        ]


def named(c: Connection, name: str) -> list[Found]:
    """Every image of the project named ``name`` at the site, Cascade's unfinished copies
    (which the listing leaves out) too."""
    return [found for n, found in _project_images(c) if n == name]


class Images(Kind):
    name = "images"
    singular = "image"
    copied = True

    def listing(self, c: Connection) -> SiteImages:
        return SiteImages(list(_project_images(c)))

    def digest(self, state: State) -> str:
        return super().digest({"os_hash_value": state["os_hash_value"], "size": state["size"]})

    def delete(self, c: Connection, found: Found) -> None:
        c.image.delete_image(found.id, ignore_missing=True)

    def leftovers(
        self,
        policy: ReplicationPolicy,
        site_id: str,
        desired: dict[str, State],
        actual: dict[str, Found],
        taken: set[str],
    ) -> dict[str, Callable[[], None]]:
        if not isinstance(actual, SiteImages):
            raise Internal("image leftovers are found in the images' own listing")
        engine = context()
        target = engine.driver(site_id)
        wanted = {str(state["id"]) for state in desired.values()}
        found = leftovers(engine.driver(policy.source_site_id or ""), actual.unfinished, wanted)
        removers: dict[str, Callable[[], None]] = {}
        for left in found:
            clash = left.name in taken or left.name in removers
            removers[f"{left.name} (source image {left.source_id})" if clash else left.name] = (
                remover(target, left)
            )
        return removers

    def desired(self, engine: EngineContext, policy: ReplicationPolicy) -> dict[str, State]:
        return {
            name: state
            for name, state in super().desired(engine, policy).items()
            if state["status"] == "active"
        }


IMAGES = register(Images())
