"""Nova flavors: a default set seeded on first use, admin-created ones, rendered per
microversion, their extra specs (``os-extra_specs``, set and unset by an admin); and their
routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cascade.api.keystone import Caller
from cascade.identity import AuthContext, authorize
from cascade_sim.common import RegionDep
from cascade_sim.errors import SimError
from cascade_sim.microversions import Microversion, NovaVersion
from cascade_sim.region import Region
from cascade_sim.state import new_uuid

TRUE = {"1", "t", "true", "on", "y", "yes"}  # Nova's strict booleans, any case
FALSE = {"0", "f", "false", "off", "n", "no"}
DEFAULTS = (  # id, name, vcpus, ram MiB, disk GiB
    ("1", "m1.tiny", 1, 512, 1),
    ("2", "m1.small", 1, 2048, 20),
    ("3", "m1.medium", 2, 4096, 40),
    ("4", "m1.large", 4, 8192, 80),
)
GLOBAL = ""  # flavors belong to no project
router = APIRouter(prefix="/compute/v2.1", tags=["compute"])


class FlavorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    ram: int = Field(ge=1)
    vcpus: int = Field(ge=1)
    disk: int = Field(ge=0)
    id: str | None = Field(None, max_length=255)
    swap: int = Field(0, ge=0)
    description: str | None = None
    # Nova's attribute names carry prefixes that are not valid Python names.
    ephemeral: int = Field(0, ge=0, alias="OS-FLV-EXT-DATA:ephemeral")
    is_public: bool = Field(True, alias="os-flavor-access:is_public")


def _seed(site: Region) -> None:
    with site.state.lock:
        if site.state.list("flavor"):
            return
        for flavor_id, name, vcpus, ram, disk in DEFAULTS:
            site.state.put("flavor", _body(flavor_id, name, vcpus, ram, disk), GLOBAL)


def _body(
    flavor_id: str,
    name: str,
    vcpus: int,
    ram: int,
    disk: int,
    swap: int = 0,
    ephemeral: int = 0,
    is_public: bool = True,
    description: str | None = None,
) -> dict[str, Any]:
    return {
        "id": flavor_id,
        "name": name,
        "vcpus": vcpus,
        "ram": ram,
        "disk": disk,
        "swap": swap,
        "ephemeral": ephemeral,
        "is_public": is_public,
        "description": description,
        "extra_specs": {},
    }


def all_flavors(site: Region) -> list[dict[str, Any]]:
    _seed(site)
    return sorted(site.state.list("flavor"), key=lambda f: (f["ram"], f["id"]))


def get(site: Region, flavor_id: str, status: int = 404) -> dict[str, Any]:
    _seed(site)
    flavor = site.state.get("flavor", flavor_id)  # by id only, as Nova: a name is not found
    if flavor is None:
        raise SimError(status, f"Flavor {flavor_id} could not be found.")
    return flavor


def create(site: Region, body: dict[str, Any]) -> dict[str, Any]:
    try:
        spec = FlavorIn.model_validate(body.get("flavor"))
    except ValidationError as error:
        raise SimError(400, f"Invalid flavor: {error.errors()[0]['msg']}") from error
    flavor_id = spec.id or new_uuid()
    if any(f["id"] == flavor_id or f["name"] == spec.name for f in all_flavors(site)):
        raise SimError(409, f"Flavor with name {spec.name} or id {flavor_id} already exists.")
    flavor = _body(
        flavor_id,
        spec.name,
        spec.vcpus,
        spec.ram,
        spec.disk,
        spec.swap,
        spec.ephemeral,
        spec.is_public,
        spec.description,
    )
    return site.state.put("flavor", flavor, GLOBAL)


def render(flavor: dict[str, Any], mv: Microversion) -> dict[str, Any]:
    body = {
        "id": flavor["id"],
        "name": flavor["name"],
        "vcpus": flavor["vcpus"],
        "ram": flavor["ram"],
        "disk": flavor["disk"],
        "OS-FLV-EXT-DATA:ephemeral": flavor["ephemeral"],
        "swap": flavor["swap"] if mv >= Microversion(2, 75) else (flavor["swap"] or ""),
        "rxtx_factor": 1.0,
        "os-flavor-access:is_public": flavor["is_public"],
        "OS-FLV-DISABLED:disabled": False,
        "links": [],
    }
    if mv >= Microversion(2, 55):
        body["description"] = flavor["description"]
    if mv >= Microversion(2, 61):
        body["extra_specs"] = flavor["extra_specs"]
    return body


def embedded(flavor: dict[str, Any]) -> dict[str, Any]:
    """The flavor as embedded in a server body since microversion 2.47."""
    return {
        "vcpus": flavor["vcpus"],
        "ram": flavor["ram"],
        "disk": flavor["disk"],
        "ephemeral": flavor["ephemeral"],
        "swap": flavor["swap"],
        "original_name": flavor["name"],
        "extra_specs": flavor["extra_specs"],
    }


def summary(flavor: dict[str, Any], mv: Microversion) -> dict[str, Any]:
    """A flavor in Nova's summary listing: its id and name (and description since 2.55)."""
    body = {"id": flavor["id"], "name": flavor["name"], "links": []}
    if mv >= Microversion(2, 55):
        body["description"] = flavor["description"]
    return body


def listed(site: Region, caller: AuthContext, is_public: str | None) -> list[dict[str, Any]]:
    """The flavors a listing shows: public ones, unless an admin asks with ``is_public``
    (``none``: both kinds; a false value: private ones), as Nova filters them (the emulator
    keeps no flavor access lists, so a project sees no private flavor listed)."""
    wanted: bool | None = True
    if caller.is_admin and is_public is not None:
        value = is_public.lower()
        if value not in TRUE | FALSE | {"none"}:
            raise SimError(400, f"Invalid is_public filter [{is_public}]")
        wanted = None if value == "none" else value in TRUE
    return [f for f in all_flavors(site) if wanted is None or f["is_public"] == wanted]


IsPublic = Annotated[str | None, Query(max_length=255)]


@router.get("/flavors", summary="List flavors (ids and names)")
def list_flavors(
    caller: Caller, site: RegionDep, mv: NovaVersion, is_public: IsPublic = None
) -> dict[str, Any]:
    return {"flavors": [summary(f, mv) for f in listed(site, caller, is_public)]}


@router.get("/flavors/detail", summary="List flavors with details")
def list_flavors_detail(
    caller: Caller, site: RegionDep, mv: NovaVersion, is_public: IsPublic = None
) -> dict[str, Any]:
    return {"flavors": [render(f, mv) for f in listed(site, caller, is_public)]}


@router.get("/flavors/{flavor_id}", summary="Show a flavor")
def show_flavor(
    flavor_id: str, _caller: Caller, site: RegionDep, mv: NovaVersion
) -> dict[str, Any]:
    return {"flavor": render(get(site, flavor_id), mv)}


@router.post("/flavors", summary="Create a flavor (admin)")
def create_flavor(
    body: Annotated[dict[str, Any], Body()], caller: Caller, site: RegionDep, mv: NovaVersion
) -> dict[str, Any]:
    authorize(caller, "admin")
    return {"flavor": render(create(site, body), mv)}


@router.delete("/flavors/{flavor_id}", status_code=202, summary="Delete a flavor")
def delete_flavor(flavor_id: str, caller: Caller, site: RegionDep) -> None:
    authorize(caller, "admin")
    get(site, flavor_id)
    site.state.delete("flavor", flavor_id)


# -- extra specs -------------------------------------------------------------------------------


def _specs_body(body: dict[str, Any]) -> dict[str, str]:
    specs = body.get("extra_specs")
    if not isinstance(specs, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 255 and len(v) <= 255
        for k, v in specs.items()
    ):
        raise SimError(400, "Invalid input for field/attribute extra_specs.")
    return specs


def _set_specs(site: Region, flavor_id: str, specs: dict[str, str]) -> dict[str, str]:
    with site.state.lock:
        flavor = get(site, flavor_id)
        flavor["extra_specs"] = {**flavor["extra_specs"], **specs}
        site.state.put("flavor", flavor, GLOBAL)
        return dict(flavor["extra_specs"])


@router.get("/flavors/{flavor_id}/os-extra_specs", summary="List a flavor's extra specs")
def list_extra_specs(flavor_id: str, _caller: Caller, site: RegionDep) -> dict[str, Any]:
    return {"extra_specs": get(site, flavor_id)["extra_specs"]}


@router.post("/flavors/{flavor_id}/os-extra_specs", summary="Create or update extra specs")
def create_extra_specs(
    flavor_id: str, body: Annotated[dict[str, Any], Body()], caller: Caller, site: RegionDep
) -> dict[str, Any]:
    authorize(caller, "admin")
    return {"extra_specs": _set_specs(site, flavor_id, _specs_body(body))}


@router.get("/flavors/{flavor_id}/os-extra_specs/{key}", summary="Show an extra spec")
def show_extra_spec(flavor_id: str, key: str, _caller: Caller, site: RegionDep) -> dict[str, Any]:
    specs = get(site, flavor_id)["extra_specs"]
    if key not in specs:
        raise SimError(404, f"Flavor {flavor_id} has no extra specs with key {key}.")
    return {key: specs[key]}


@router.put("/flavors/{flavor_id}/os-extra_specs/{key}", summary="Set one extra spec")
def update_extra_spec(
    flavor_id: str,
    key: str,
    body: Annotated[dict[str, Any], Body()],
    caller: Caller,
    site: RegionDep,
) -> dict[str, Any]:
    authorize(caller, "admin")
    if list(body) != [key]:
        raise SimError(400, "Request body and URI mismatch")
    specs = _set_specs(site, flavor_id, _specs_body({"extra_specs": body}))
    return {key: specs[key]}


@router.delete("/flavors/{flavor_id}/os-extra_specs/{key}", summary="Unset an extra spec")
def delete_extra_spec(flavor_id: str, key: str, caller: Caller, site: RegionDep) -> None:
    authorize(caller, "admin")
    with site.state.lock:
        flavor = get(site, flavor_id)
        if key not in flavor["extra_specs"]:
            raise SimError(404, f"Flavor {flavor_id} has no extra specs with key {key}.")
        del flavor["extra_specs"][key]
        site.state.put("flavor", flavor, GLOBAL)
