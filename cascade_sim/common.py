"""What every simulated service shares: the site, the caller's project, visibility, internal
fields, Nova-style microversions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from cascade.identity import AuthContext
from cascade_sim.errors import SimError
from cascade_sim.region import Region


def _site(request: Request) -> Region:
    found: Region = request.app.state.site
    return found


RegionDep = Annotated[Region, Depends(_site)]


def project_of(caller: AuthContext) -> str:
    """OpenStack services act inside the token's project."""
    if caller.project is None:
        raise SimError(403, "A project-scoped token is required.")
    return caller.project.id


def visible(caller: AuthContext, body: dict[str, Any], owner_key: str = "_project_id") -> bool:
    return caller.is_admin or body.get(owner_key) == project_of(caller)


def public(body: dict[str, Any]) -> dict[str, Any]:
    """A resource as the API shows it: internal fields (leading underscore) removed."""
    return {key: value for key, value in body.items() if not key.startswith("_")}


def found(
    site: Region, caller: AuthContext, kind: str, resource_id: str, label: str
) -> dict[str, Any]:
    """The resource, if it exists and the caller may see it; else the service's 404."""
    body = site.state.get(kind, resource_id)
    if body is None or not visible(caller, body):
        raise SimError(404, f"{label} {resource_id} could not be found.")
    return body
