"""What every Cinder resource shares: its stored record (created, saved, updated, its due
transition to available applied on read), the 404 of a lookup, status checks, listings,
links and the one availability zone.

Transitions that only take time (creating -> available) are a due time in the body
(``_due``), applied when the body is next read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from cascade.identity import AuthContext
from cascade_sim.common import found, project_of
from cascade_sim.errors import SimError
from cascade_sim.region import Region
from cascade_sim.state import new_uuid, now_iso
from cascade_sim.volume.bodies import Changes
from cascade_sim.volume.disk import data_file

Json = dict[str, Any]
ZONE = "nova"
LABELS = {
    "volume": "Volume",
    "snapshot": "Snapshot",
    "backup": "Backup",
    "group": "Group",
    "group_snapshot": "GroupSnapshot",
}


def fresh(owner: str, /, **fields: Any) -> Json:
    """The body of a new resource of project ``owner``."""
    now = now_iso()
    return {
        "id": new_uuid(),
        "created_at": now,
        "updated_at": now,
        **fields,
        "_project_id": owner,
        "_created": time.time_ns(),
    }


def due_at(site: Region) -> float:
    """When a transition that only takes time, starting now, is due."""
    return time.time() + site.config.build_seconds


def save(site: Region, kind: str, body: Json) -> Json:
    body["updated_at"] = now_iso()
    return site.state.put(kind, body, body["_project_id"])


def update(site: Region, kind: str, resource_id: str, **fields: Any) -> Json | None:
    """Set fields of a stored resource; None if it no longer exists."""
    with site.state.lock:
        body = site.state.get(kind, resource_id)
        if body is None:
            return None
        body.update(fields)
        return save(site, kind, body)


def settled(site: Region, kind: str, body: Json) -> Json:
    """The body with its due transition to available applied (and stored) once due."""
    due = body.get("_due")
    if due is None or time.time() < due:
        return body
    with site.state.lock:
        current = site.state.get(kind, body["id"])
        if current is None or current.get("_due") != due:
            return current or body
        current["status"] = "available"
        del current["_due"]
        return save(site, kind, current)


def load(
    site: Region, caller: AuthContext, kind: str, resource_id: str, field: str | None = None
) -> Json:
    """A resource the caller may see, else a 404 (naming ``field`` when it came from a body)."""
    label = f"{field}: {LABELS[kind]}" if field else LABELS[kind]
    return settled(site, kind, found(site, caller, kind, resource_id, label))


def changed(
    site: Region, caller: AuthContext, kind: str, resource_id: str, changes: Changes
) -> Json:
    """A volume or a snapshot the caller may see, with ``changes`` applied and stored."""
    with site.state.lock:
        body = load(site, caller, kind, resource_id)
        body.update(changes.model_dump(exclude_unset=True))
        return save(site, kind, body)


def discard(site: Region, kind: str, resource_id: str) -> None:
    """Forget a volume or a snapshot and remove its data file."""
    site.state.delete(kind, resource_id)
    data_file(site, kind, resource_id).unlink(missing_ok=True)


def require_status(kind: str, body: Json, allowed: set[str], doing: str) -> None:
    if body["status"] not in allowed:
        raise SimError(
            409,
            f"{LABELS[kind]} {body['id']} is {body['status']}; {doing} needs it "
            f"{' or '.join(sorted(allowed))}.",
        )


def check_zone(zone: str | None, field: str) -> None:
    if zone not in (None, ZONE):
        raise SimError(
            400, f"{field}: availability zone {zone!r} is invalid (this region: {ZONE})."
        )


@dataclass
class Listing:
    """Cinder's list filters; ``all_tenants=1`` lists every project's (admin only)."""

    name: str | None = None
    status: str | None = None
    volume_id: str | None = None
    all_tenants: str | None = None


ListingDep = Annotated[Listing, Depends()]


def listing(site: Region, caller: AuthContext, kind: str, query: Listing) -> list[Json]:
    """The resources of a kind the query selects, newest first."""
    everyone = caller.is_admin and (query.all_tenants or "").lower() in ("1", "true", "yes")
    wanted = {
        key: value
        for key, value in (
            ("name", query.name),
            ("status", query.status),
            ("volume_id", query.volume_id),
        )
        if value is not None
    }
    bodies = [
        settled(site, kind, body)
        for body in site.state.list(kind, None if everyone else project_of(caller))
    ]
    chosen = [b for b in bodies if all(b.get(key) == value for key, value in wanted.items())]
    return sorted(chosen, key=lambda body: int(body["_created"]), reverse=True)


def detailed(request: Request) -> bool:
    """Whether a list request asked for ``/detail``."""
    return request.url.path.endswith("/detail")


def links(site: Region, collection: str, resource_id: str) -> list[Json]:
    base = site.config.base_url
    return [
        {"rel": "self", "href": f"{base}/volume/v3/{collection}/{resource_id}"},
        {"rel": "bookmark", "href": f"{base}/volume/{collection}/{resource_id}"},
    ]


def summary(site: Region, collection: str, body: Json) -> Json:
    return {"id": body["id"], "name": body["name"], "links": links(site, collection, body["id"])}


def bootable_of(body: Json) -> str:
    """Volumes show ``bootable``; snapshots and backups keep their volume's as ``_bootable``."""
    return str(body.get("bootable", body.get("_bootable", "false")))
