"""Volume types: the one default type of this region, the lookup of a type a request names,
and whether a group takes a type."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from cascade.api.keystone import Caller
from cascade_sim.errors import SimError
from cascade_sim.volume.records import Json

DEFAULT_TYPE: Json = {
    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "cascade-site-sim:volume-type:__DEFAULT__")),
    "name": "__DEFAULT__",
    "description": "Default Volume Type",
    "is_public": True,
    "os-volume-type-access:is_public": True,
    "extra_specs": {},
    "qos_specs_id": None,
}


def find_volume_type(reference: str | None, field: str) -> Json:
    """The type a request names by id or name (none: the default), else a 404."""
    if reference in (None, DEFAULT_TYPE["id"], DEFAULT_TYPE["name"]):
        return DEFAULT_TYPE
    raise SimError(404, f"{field}: volume type {reference} could not be found.")


def check_type_allowed(group: Json, volume_type: Json, field: str) -> None:
    if volume_type["id"] not in group["volume_types"]:
        raise SimError(
            400, f"{field}: group {group['id']} does not take volume type {volume_type['name']}."
        )


types = APIRouter()


@types.get("/types", summary="List volume types")
def list_types(_caller: Caller) -> Json:
    return {"volume_types": [DEFAULT_TYPE]}


@types.get("/types/{type_id}", summary="Show a volume type")
def show_type(type_id: str, _caller: Caller) -> Json:
    if type_id != DEFAULT_TYPE["id"]:
        raise SimError(404, f"Volume type {type_id} could not be found.")
    return {"volume_type": DEFAULT_TYPE}
