"""Flavors as replication sees them: named, with their id (kept the same at every site), size
and extra specs. A flavor's size cannot change in Nova, so a changed one is deleted and
created again under its id; extra specs are set and unset in place. Flavors are shared by
every tenant of a site (``site_global``): one Cascade did not put there is never changed."""

from __future__ import annotations

from typing import Any

from openstack.connection import Connection

from cascade.replication.kinds import Found, Kind, State, register

SIZE = ("id", "vcpus", "ram", "disk", "swap", "ephemeral", "is_public", "description")


def _state(flavor: Any) -> State:
    return {
        "id": flavor.id,
        "vcpus": flavor.vcpus,
        "ram": flavor.ram,
        "disk": flavor.disk,
        "swap": int(flavor.swap or 0),
        "ephemeral": int(flavor.ephemeral or 0),
        "is_public": bool(flavor.is_public),
        "description": flavor.description,
        "extra_specs": dict(flavor.extra_specs or {}),
    }


class Flavors(Kind):
    name = "flavors"
    singular = "flavor"
    site_global = True

    def listing(self, c: Connection) -> dict[str, Found]:
        return {f.name: Found(f.id, _state(f)) for f in c.compute.flavors(details=True)}

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
