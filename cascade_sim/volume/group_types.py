"""Group types (microversion 3.11 on): the default one, created the first time types are
needed, and those an admin creates."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from cascade.api.keystone import Caller
from cascade.identity import authorize
from cascade_sim.common import RegionDep
from cascade_sim.errors import SimError
from cascade_sim.microversions import Microversion
from cascade_sim.region import Region
from cascade_sim.volume.bodies import Strict, Text
from cascade_sim.volume.records import Json, fresh, save
from cascade_sim.volume.versions import requires

DEFAULT_GROUP_TYPE = "default_group_type"


class GroupTypeSpec(Strict):
    name: str = Field(min_length=1, max_length=255)
    description: Text | None = None
    is_public: bool = True
    group_specs: dict[str, str] = Field(default_factory=dict)


class GroupTypeCreate(Strict):
    group_type: GroupTypeSpec


def _group_types(site: Region) -> list[Json]:
    """Every group type; the default one is created the first time types are needed."""
    with site.state.lock:
        found_types = site.state.list("group_type")
        if not any(t["name"] == DEFAULT_GROUP_TYPE for t in found_types):
            default = fresh(
                "",
                name=DEFAULT_GROUP_TYPE,
                description="Default group type",
                is_public=True,
                group_specs={},
            )
            found_types.append(save(site, "group_type", default))
    return found_types


def find_group_type(site: Region, reference: str, where: str = "") -> Json:
    """The group type of that id or name, else a 404 (``where`` says which field named it)."""
    for group_type in _group_types(site):
        if reference in (group_type["id"], group_type["name"]):
            return group_type
    raise SimError(404, f"Group type {reference} could not be found{where}.")


def _group_type_view(group_type: Json) -> Json:
    keys = ("id", "name", "description", "is_public", "group_specs")
    return {key: group_type[key] for key in keys}


group_types = APIRouter(dependencies=[requires(Microversion(3, 11))])


@group_types.post("/group_types", summary="Create a group type (admin)")
def create_group_type(body: GroupTypeCreate, caller: Caller, site: RegionDep) -> Json:
    authorize(caller, "admin")
    spec = body.group_type
    with site.state.lock:
        if any(t["name"] == spec.name for t in _group_types(site)):
            raise SimError(409, f"group_type.name: group type {spec.name} already exists.")
        created = save(site, "group_type", fresh("", **spec.model_dump()))
    return {"group_type": _group_type_view(created)}


@group_types.get("/group_types", summary="List group types")
def list_group_types(_caller: Caller, site: RegionDep) -> Json:
    return {"group_types": [_group_type_view(t) for t in _group_types(site)]}


@group_types.get("/group_types/default", summary="Show the default group type")
def show_default_group_type(_caller: Caller, site: RegionDep) -> Json:
    return {"group_type": _group_type_view(find_group_type(site, DEFAULT_GROUP_TYPE))}


@group_types.get("/group_types/{group_type_id}", summary="Show a group type")
def show_group_type(group_type_id: str, _caller: Caller, site: RegionDep) -> Json:
    return {"group_type": _group_type_view(find_group_type(site, group_type_id))}
