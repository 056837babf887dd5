"""Flavors as replication sees them: named, with their id (kept the same at every site), size
and extra specs. A flavor's size cannot change in Nova, so a changed one is deleted and
created again under its id; extra specs are set and unset in place. Flavors are shared by
every tenant of a site (``site_global``): one Cascade did not put there is never changed.

A site's flavors are listed as Nova's JSON, page by page (``kinds.paged``: ``limit`` and
``marker``, following Nova's ``flavors_links``), through the site connection's own session,
and read as plain dicts: building an openstacksdk ``Flavor`` per flavor cost ~0.5 ms each,
most of an audit pass over thousands. Microversion 2.61 (Rocky) lists each flavor's extra
specs with it; a Nova older than that refuses the listing (406), which fails the call naming
the site."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from openstack.connection import Connection

from cascade.replication.kinds import Found, Kind, State, paged, register

SIZE = ("id", "vcpus", "ram", "disk", "swap", "ephemeral", "is_public", "description")
MICROVERSION = "2.61"  # the first that lists extra specs


def _state(flavor: dict[str, Any]) -> State:
    """The state of one flavor of Nova's JSON (``swap`` is "" for none before 2.75)."""
    return {
        "id": flavor["id"],
        "vcpus": flavor["vcpus"],
        "ram": flavor["ram"],
        "disk": flavor["disk"],
        "swap": int(flavor.get("swap") or 0),
        "ephemeral": int(flavor.get("OS-FLV-EXT-DATA:ephemeral") or 0),
        "is_public": bool(flavor.get("os-flavor-access:is_public", True)),
        "description": flavor.get("description"),
        "extra_specs": dict(flavor.get("extra_specs") or {}),
    }


def _pages(c: Connection) -> Iterator[dict[str, Any]]:
    """Every flavor at the site (public and private), as Nova's JSON, a page at a time."""
    return paged(
        c.compute,
        "/flavors/detail",
        "flavors",
        {"is_public": "None"},
        lambda flavor: str(flavor["id"]),
        MICROVERSION,
    )


class Flavors(Kind):
    name = "flavors"
    singular = "flavor"
    site_global = True

    def listing(self, c: Connection) -> dict[str, Found]:
        return {f["name"]: Found(f["id"], _state(f)) for f in _pages(c)}

    def write(
        self, c: Connection, name: str, state: State, found: Found | None, ids: dict[str, str]
    ) -> str:
        specs: dict[str, str] = state["extra_specs"]
        if found is not None and any(found.state[k] != state[k] for k in SIZE):
            c.compute.delete_flavor(found.id)
            found = None
        if found is None:
            c.compute.create_flavor(name=name, **{k: state[k] for k in SIZE})
            have: dict[str, str] = {}
        else:
            have = found.state["extra_specs"]
        for key in sorted(set(have) - set(specs)):
            c.compute.delete_flavor_extra_specs_property(state["id"], key)
        changed = {k: v for k, v in specs.items() if have.get(k) != v}
        if changed:
            c.compute.create_flavor_extra_specs(state["id"], changed)
        return str(state["id"])

    def delete(self, c: Connection, found: Found) -> None:
        c.compute.delete_flavor(found.id)


FLAVORS = register(Flavors())
