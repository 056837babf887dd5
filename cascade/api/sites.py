"""``/v1/sites``: register, list, show and delete the OpenStack regions Cascade drives.

A site belongs to the project of the token that registered it; members of that project may
manage it, readers may see it, admins see every site. The credential is write-only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from cascade.api.deps import Caller, ServicesDep
from cascade.api.errors import error_responses
from cascade.errors import Forbidden
from cascade.identity.policy import authorize, visible_projects
from cascade.sites.registry import SiteRegistry
from cascade.sites.schemas import SiteEnvelope, SiteIn, SiteList

router = APIRouter(prefix="/v1/sites", tags=["sites"])
SiteRef = Annotated[str, Path(min_length=1, max_length=255, description="Site name or id")]


def _registry(svc: ServicesDep) -> SiteRegistry:
    return SiteRegistry(svc.db, svc.credentials, svc.settings.effective_public_url)


@router.post(
    "",
    status_code=201,
    response_model=SiteEnvelope,
    summary="Register a site",
    responses=error_responses(400, 401, 403, 409, 502),
)
def register_site(body: SiteIn, caller: Caller, svc: ServicesDep) -> SiteEnvelope:
    if caller.project is None:
        raise Forbidden("Registering a site needs a project-scoped token.")
    authorize(caller, "member", caller.project.id)
    return SiteEnvelope(site=_registry(svc).register(body, caller.project.id))


@router.get("", response_model=SiteList, summary="List sites", responses=error_responses(401))
def list_sites(caller: Caller, svc: ServicesDep) -> SiteList:
    return SiteList(sites=_registry(svc).list(visible_projects(caller)))


@router.get(
    "/{site}",
    response_model=SiteEnvelope,
    summary="Show a site",
    responses=error_responses(401, 404),
)
def show_site(site: SiteRef, caller: Caller, svc: ServicesDep) -> SiteEnvelope:
    return SiteEnvelope(site=_registry(svc).get(site, visible_projects(caller)))


@router.delete(
    "/{site}",
    status_code=204,
    summary="Delete a site (refused while Cascade keeps servers there)",
    responses=error_responses(401, 403, 404, 409),
)
def delete_site(site: SiteRef, caller: Caller, svc: ServicesDep) -> Response:
    registry = _registry(svc)
    found = registry.get(site, visible_projects(caller))
    authorize(caller, "member", found.project_id)
    registry.delete(found.id, None)
    return Response(status_code=204)
