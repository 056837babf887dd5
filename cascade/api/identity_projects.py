"""Keystone ``/identity/v3`` routes beside the CRUD of ``cascade.api.identity_resources``: a
project's tags (``/projects/{id}/tags[/{tag}]``) and a region created at the id the caller
chose (``PUT /regions/{id}``).

Writes need ``admin``; a project's tags are read by its readers.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel

from cascade.api.deps import Caller, IdentityDep
from cascade.api.errors import error_responses
from cascade.api.identity_resources import PREFIX, ResourceId, base_url, with_extra
from cascade.errors import BadRequest, NotFound
from cascade.identity import render, schemas
from cascade.identity.kinds import PROJECT, REGION
from cascade.identity.policy import authorize

MAX_TAGS = 80  # Keystone's limit of tags on one project

router = APIRouter(prefix=PREFIX, tags=["identity: projects"])


class RegionBody(BaseModel):
    region: schemas.RegionIn


@router.put(
    "/regions/{row_id}",  # the CRUD path's parameter name: one OpenAPI path
    status_code=201,
    response_model=dict[str, schemas.RegionOut],
    summary="Create a region with the given id",
    responses=error_responses(400, 401, 403, 409),
)
def create_region_at(
    row_id: ResourceId, body: RegionBody, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    authorize(caller, "admin")
    fields = {**with_extra(body.region, None), "id": row_id}
    return {"region": render.region(svc.store.create(REGION, fields), base_url(request))}


def _project_tags(svc: Any, project_id: str) -> list[str]:
    project = svc.identity.cached().projects.get(project_id)
    if project is None:
        raise NotFound(f"Could not find project: {project_id}.")
    return list(project.tags or [])


def _set_tags(svc: Any, project_id: str, tags: list[str]) -> list[str]:
    unique = list(dict.fromkeys(tags))
    if len(unique) > MAX_TAGS:
        raise BadRequest(f"A project has at most {MAX_TAGS} tags.")
    svc.store.update(PROJECT, project_id, {"tags": unique})
    return unique


TagName = Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[^/,]+$")]
TAGS = "/projects/{project_id}/tags"
ONE = TAGS + "/{tag}"
READ = error_responses(401, 403, 404)
WRITE = error_responses(400, 401, 403, 404)


@router.get(TAGS, response_model=schemas.TagList, summary="A project's tags", responses=READ)
def list_tags(project_id: ResourceId, caller: Caller, svc: IdentityDep) -> dict[str, Any]:
    authorize(caller, "reader", project_id)
    return {"tags": _project_tags(svc, project_id)}


@router.put(
    TAGS,
    response_model=schemas.TagList,
    summary="Replace a project's tags",
    responses=error_responses(400, 401, 403, 404),
)
def replace_tags(
    project_id: ResourceId, body: schemas.TagList, caller: Caller, svc: IdentityDep
) -> dict[str, Any]:
    authorize(caller, "admin")
    _project_tags(svc, project_id)
    return {"tags": _set_tags(svc, project_id, body.tags)}


@router.delete(TAGS, status_code=204, summary="Remove a project's tags", responses=READ)
def clear_tags(project_id: ResourceId, caller: Caller, svc: IdentityDep) -> Response:
    authorize(caller, "admin")
    _project_tags(svc, project_id)
    _set_tags(svc, project_id, [])
    return Response(status_code=204)


def check_tag(project_id: ResourceId, tag: TagName, caller: Caller, svc: IdentityDep) -> Response:
    authorize(caller, "reader", project_id)
    if tag not in _project_tags(svc, project_id):
        raise NotFound(f"Tag {tag} not found for project {project_id}.")
    return Response(status_code=204)


CHECKED = {204: {"description": "Tagged"}, **READ}
router.get(ONE, status_code=204, summary="Check a project's tag", responses=CHECKED)(check_tag)
router.head(ONE, status_code=204, summary="Check a project's tag", responses=CHECKED)(check_tag)


@router.put(ONE, status_code=201, summary="Add a tag to a project", responses=WRITE)
def add_tag(project_id: ResourceId, tag: TagName, caller: Caller, svc: IdentityDep) -> Response:
    authorize(caller, "admin")
    _set_tags(svc, project_id, [*_project_tags(svc, project_id), tag])
    return Response(status_code=201)


@router.delete(ONE, status_code=204, summary="Remove a project's tag", responses=READ)
def remove_tag(project_id: ResourceId, tag: TagName, caller: Caller, svc: IdentityDep) -> Response:
    authorize(caller, "admin")
    tags = _project_tags(svc, project_id)
    if tag not in tags:
        raise NotFound(f"Tag {tag} not found for project {project_id}.")
    _set_tags(svc, project_id, [t for t in tags if t != tag])
    return Response(status_code=204)
