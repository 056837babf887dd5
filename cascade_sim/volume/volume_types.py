"""Volume types: the one default type of this region, those an admin creates (with extra
specs; a replicated type names its replication target, see ``replication``), the lookup of a
type a request names, and whether a group takes a type."""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi import APIRouter
from pydantic import Field

from cascade.api.keystone import Caller
from cascade.identity import authorize
from cascade_sim.common import RegionDep
from cascade_sim.errors import SimError
from cascade_sim.region import Region
from cascade_sim.volume.bodies import Strict, Text
from cascade_sim.volume.records import Json, fresh, save

DEFAULT_TYPE: Json = {
    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "cascade-site-sim:volume-type:__DEFAULT__")),
    "name": "__DEFAULT__",
    "description": "Default Volume Type",
    "is_public": True,
    "os-volume-type-access:is_public": True,
    "extra_specs": {},
    "qos_specs_id": None,
}
REPLICATION_ENABLED = "replication_enabled"  # Cinder's extra spec: '<is> True' replicates
REPLICA_DIR = "cascade_sim:replica_dir"  # where the emulated array mirrors such volumes


class VolumeTypeSpec(Strict):
    name: str = Field(min_length=1, max_length=255)
    description: Text | None = None
    is_public: bool = True
    extra_specs: dict[str, str] = Field(default_factory=dict, max_length=64)


class VolumeTypeCreate(Strict):
    volume_type: VolumeTypeSpec


def volume_types(site: Region) -> list[Json]:
    """The default type, then those an admin created."""
    return [DEFAULT_TYPE, *sorted(site.state.list("volume_type"), key=lambda t: t["_created"])]


def find_volume_type(site: Region, reference: str | None, field: str) -> Json:
    """The type a request names by id or name (none: the default), else a 404."""
    for volume_type in volume_types(site) if reference is not None else [DEFAULT_TYPE]:
        if reference in (None, volume_type["id"], volume_type["name"]):
            return volume_type
    raise SimError(404, f"{field}: volume type {reference} could not be found.")


def _replicates(specs: dict[str, str]) -> bool:
    return specs.get(REPLICATION_ENABLED, "").replace(" ", "").lower() == "<is>true"


def replica_dir(volume_type: Json) -> Path | None:
    """The directory the type's volumes are mirrored to, if the type replicates."""
    specs = volume_type["extra_specs"]
    return Path(specs[REPLICA_DIR]) if _replicates(specs) else None


def _check_replication(specs: dict[str, str]) -> None:
    """A replicated type names an existing absolute directory as its target."""
    if not _replicates(specs):
        return
    where = specs.get(REPLICA_DIR)
    if where is None or not Path(where).is_absolute() or not Path(where).is_dir():
        raise SimError(
            400,
            f"volume_type.extra_specs: {REPLICATION_ENABLED} needs {REPLICA_DIR}, the absolute "
            f"path of an existing directory (the replication target), not {where!r}.",
        )


def check_type_allowed(group: Json, volume_type: Json, field: str) -> None:
    if volume_type["id"] not in group["volume_types"]:
        raise SimError(
            400, f"{field}: group {group['id']} does not take volume type {volume_type['name']}."
        )


def _view(volume_type: Json) -> Json:
    return {
        key: value
        for key, value in volume_type.items()
        if not key.startswith("_") and key not in ("created_at", "updated_at")
    }


types = APIRouter()


@types.post("/types", summary="Create a volume type (admin)")
def create_type(body: VolumeTypeCreate, caller: Caller, site: RegionDep) -> Json:
    authorize(caller, "admin")
    spec = body.volume_type
    _check_replication(spec.extra_specs)
    with site.state.lock:
        if any(t["name"] == spec.name for t in volume_types(site)):
            raise SimError(409, f"volume_type.name: volume type {spec.name} already exists.")
        created = save(
            site,
            "volume_type",
            fresh(
                "",
                **spec.model_dump(),
                **{"os-volume-type-access:is_public": spec.is_public, "qos_specs_id": None},
            ),
        )
    return {"volume_type": _view(created)}


@types.get("/types", summary="List volume types")
def list_types(_caller: Caller, site: RegionDep) -> Json:
    return {"volume_types": [_view(t) for t in volume_types(site)]}


@types.get("/types/{type_id}", summary="Show a volume type")
def show_type(type_id: str, _caller: Caller, site: RegionDep) -> Json:
    found = next((t for t in volume_types(site) if type_id in (t["id"], t["name"])), None)
    if found is None:
        raise SimError(404, f"Volume type {type_id} could not be found.")
    return {"volume_type": _view(found)}
