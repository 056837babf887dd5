"""``/v1/sites``: register, update, list, show and delete the OpenStack regions Cascade drives.

A registered site's region and identity endpoint join the one catalog every tenant's token
carries, so registering, updating and deleting a site is an admin act; the site belongs to
the project of the token that registered it (its readers and members may see it, admins see
every site). The credential is write-only. A site that cannot be reached is removed with
``?force=true``, which answers what Cascade forgot.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from cascade.api.deps import Caller
from cascade.api.errors import error_responses
from cascade.api.services_dep import ServicesDep
from cascade.errors import Forbidden
from cascade.identity.policy import authorize, visible_projects
from cascade.sites.registry import SiteRegistry
from cascade.sites.schemas import ForcedRemoval, SiteEnvelope, SiteIn, SiteList, SitePatch

router = APIRouter(prefix="/v1/sites", tags=["sites"])
SiteRef = Annotated[str, Path(min_length=1, max_length=255, description="Site name or id")]
Force = Annotated[
    bool,
    Query(
        description="Remove a site that cannot be reached although Cascade keeps servers "
        "there: they are marked ERROR with the reason, and the answer lists what was forgotten."
    ),
]


def site_registry(svc: ServicesDep) -> SiteRegistry:
    return SiteRegistry(svc.db, svc.credentials, svc.settings.effective_public_url)


@router.post(
    "",
    status_code=201,
    response_model=SiteEnvelope,
    summary="Register a site (admin: its region joins the shared catalog)",
    responses=error_responses(400, 401, 403, 409, 502),
)
def register_site(body: SiteIn, caller: Caller, svc: ServicesDep) -> SiteEnvelope:
    if caller.project is None:
        raise Forbidden("Registering a site needs a project-scoped token.")
    authorize(caller, "admin")
    return SiteEnvelope(site=site_registry(svc).register(body, caller.project.id))


@router.get("", response_model=SiteList, summary="List sites", responses=error_responses(401))
def list_sites(caller: Caller, svc: ServicesDep) -> SiteList:
    return SiteList(sites=site_registry(svc).list(visible_projects(caller)))


@router.get(
    "/{site}",
    response_model=SiteEnvelope,
    summary="Show a site",
    responses=error_responses(401, 404),
)
def show_site(site: SiteRef, caller: Caller, svc: ServicesDep) -> SiteEnvelope:
    return SiteEnvelope(site=site_registry(svc).get(site, visible_projects(caller)))


@router.patch(
    "/{site}",
    response_model=SiteEnvelope,
    summary="Change a site's credentials or identity URL (admin; checked at the site first)",
    responses=error_responses(400, 401, 403, 404, 502),
)
def update_site(site: SiteRef, body: SitePatch, caller: Caller, svc: ServicesDep) -> SiteEnvelope:
    authorize(caller, "admin")
    return SiteEnvelope(site=site_registry(svc).update(site, body, None))


@router.delete(
    "/{site}",
    status_code=204,
    summary="Delete a site (admin; refused while Cascade keeps servers there unless forced)",
    responses={
        200: {"model": ForcedRemoval, "description": "Removed by force: what Cascade forgot"},
        **error_responses(401, 403, 404, 409),
    },
)
def delete_site(site: SiteRef, caller: Caller, svc: ServicesDep, force: Force = False) -> Response:
    authorize(caller, "admin")
    registry = site_registry(svc)
    if not force:
        registry.delete(site, None)
        return Response(status_code=204)
    removed = registry.force_delete(site, None)
    body = ForcedRemoval(message=removed.message, **vars(removed))
    return Response(body.model_dump_json(), status_code=200, media_type="application/json")
