"""Keystone ``/identity/v3/OS-EP-FILTER``: endpoint groups (endpoints chosen by ``filters`` on
``service_id``, ``region_id`` and ``interface``: create, list by name, show, check, update,
delete, their endpoints), and which endpoints and endpoint groups are associated with a
project (``projects/{id}/endpoints/{id}``, ``endpoint_groups/{id}/projects/{id}``).

As with Keystone's default catalog driver, associations are recorded and listed but do not
narrow a token's catalog. Writes need ``admin``; reads an admin or a system reader.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from cascade.api.deps import Caller, IdentityDep
from cascade.api.errors import error_responses
from cascade.api.identity_resources import PREFIX, base_url
from cascade.db.models import EndpointGroup, ProjectEndpoint, ProjectEndpointGroup
from cascade.errors import NotFound
from cascade.identity import render, schemas
from cascade.identity.kinds import ENDPOINT, ENDPOINT_GROUP, PROJECT
from cascade.identity.policy import authorize
from cascade.identity.snapshot import IdentitySnapshot

Id = Annotated[str, Path(min_length=1, max_length=64)]
FILTERS = "/OS-EP-FILTER"
GROUPS = FILTERS + "/endpoint_groups"
ONE_GROUP = GROUPS + "/{group_id}"
READ = error_responses(401, 403, 404)
WRITE = error_responses(400, 401, 403, 404, 409)

router = APIRouter(prefix=PREFIX, tags=["identity: endpoint filters"])


class Filters(BaseModel):
    """What an endpoint must match (every key given); Keystone knows these three."""

    model_config = ConfigDict(extra="forbid", strict=True)
    service_id: str | None = Field(None, min_length=1, max_length=64)
    region_id: str | None = Field(None, min_length=1, max_length=255)
    interface: str | None = Field(None, pattern="^(public|internal|admin)$")


class GroupIn(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    name: str = Field(min_length=1, max_length=255)
    description: str = Field("", max_length=65535)
    filters: Filters


class GroupPatch(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    name: str | None = Field(None, min_length=1, max_length=255)
    description: str | None = Field(None, max_length=65535)
    filters: Filters | None = None


class GroupOut(BaseModel):
    id: str
    name: str
    description: str
    filters: dict[str, str]
    links: schemas.SelfLink


class GroupBody(BaseModel):
    endpoint_group: GroupIn


class GroupPatchBody(BaseModel):
    endpoint_group: GroupPatch


class OneGroup(BaseModel):
    endpoint_group: GroupOut


class GroupList(BaseModel):
    endpoint_groups: list[GroupOut]
    links: schemas.Links


class EndpointList(BaseModel):
    endpoints: list[schemas.EndpointOut]
    links: schemas.Links


class OneProject(BaseModel):
    project: schemas.ProjectOut


def _links(request: Request) -> dict[str, Any]:
    return {"self": str(request.url), "previous": None, "next": None}


def _rendered(row: EndpointGroup, base: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "filters": dict(row.filters or {}),
        "links": {"self": f"{base}/v3/OS-EP-FILTER/endpoint_groups/{row.id}"},
    }


def _group(snapshot: IdentitySnapshot, group_id: str) -> EndpointGroup:
    found = snapshot.endpoint_groups.get(group_id)
    if found is None:
        raise NotFound(f"Could not find endpoint group: {group_id}.")
    return found


def _project_of(snapshot: IdentitySnapshot, project_id: str) -> None:
    if project_id not in snapshot.projects:
        raise NotFound(f"Could not find project: {project_id}.")


def _associated(rows: list[Any], match: str, value: str, take: str) -> list[str]:
    """The ``take`` ids of the association ``rows`` whose ``match`` is ``value``."""
    return sorted(getattr(a, take) for a in rows if getattr(a, match) == value)


def _projects(snapshot: IdentitySnapshot, ids: list[str], base: str) -> list[Any]:
    return [render.project(snapshot.projects[i], base) for i in ids if i in snapshot.projects]


def _endpoints(snapshot: IdentitySnapshot, filters: dict[str, str], base: str) -> list[Any]:
    """The endpoints matching every filter, as Keystone renders them."""
    return [
        render.endpoint(e, base)
        for e in sorted(snapshot.endpoints.values(), key=lambda e: e.id)
        if all(getattr(e, key) == value for key, value in filters.items())
    ]


@router.post(
    GROUPS,
    status_code=201,
    response_model=OneGroup,
    summary="Create an endpoint group",
    responses=WRITE,
)
def create_group(
    body: GroupBody, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    authorize(caller, "admin")
    fields = body.endpoint_group.model_dump()
    fields["filters"] = body.endpoint_group.filters.model_dump(exclude_none=True)
    row = svc.store.create(ENDPOINT_GROUP, fields)
    return {"endpoint_group": _rendered(row, base_url(request))}


@router.get(GROUPS, response_model=GroupList, summary="List endpoint groups", responses=READ)
def list_groups(
    caller: Caller,
    svc: IdentityDep,
    request: Request,
    name: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
) -> dict[str, Any]:
    authorize(caller, "reader")
    base = base_url(request)
    rows = svc.identity.cached().endpoint_groups.values()
    found = [_rendered(g, base) for g in rows if name is None or g.name == name]
    return {"endpoint_groups": found, "links": _links(request)}


@router.get(ONE_GROUP, response_model=OneGroup, summary="Show an endpoint group", responses=READ)
def show_group(group_id: Id, caller: Caller, svc: IdentityDep, request: Request) -> dict[str, Any]:
    authorize(caller, "reader")
    return {"endpoint_group": _rendered(_group(svc.identity.cached(), group_id), base_url(request))}


@router.head(ONE_GROUP, status_code=200, summary="Check an endpoint group", responses=READ)
def check_group(group_id: Id, caller: Caller, svc: IdentityDep) -> Response:
    authorize(caller, "reader")
    _group(svc.identity.cached(), group_id)
    return Response(status_code=200)


@router.patch(
    ONE_GROUP, response_model=OneGroup, summary="Update an endpoint group", responses=WRITE
)
def update_group(
    group_id: Id, body: GroupPatchBody, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    authorize(caller, "admin")
    given = body.endpoint_group
    fields = given.model_dump(exclude_unset=True)
    if given.filters is not None:
        fields["filters"] = given.filters.model_dump(exclude_none=True)
    row = svc.store.update(ENDPOINT_GROUP, group_id, fields)
    return {"endpoint_group": _rendered(row, base_url(request))}


@router.delete(ONE_GROUP, status_code=204, summary="Delete an endpoint group", responses=READ)
def delete_group(group_id: Id, caller: Caller, svc: IdentityDep) -> Response:
    authorize(caller, "admin")
    svc.store.delete(ENDPOINT_GROUP, group_id)
    return Response(status_code=204)


@router.get(
    ONE_GROUP + "/endpoints",
    response_model=EndpointList,
    summary="The endpoints an endpoint group chooses",
    responses=READ,
)
def group_endpoints(
    group_id: Id, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    authorize(caller, "reader")
    snapshot = svc.identity.cached()
    found = _endpoints(snapshot, _group(snapshot, group_id).filters, base_url(request))
    return {"endpoints": found, "links": _links(request)}


# ---- associations with projects --------------------------------------------------------------

GROUP_PROJECTS = ONE_GROUP + "/projects"
GROUP_PROJECT = GROUP_PROJECTS + "/{project_id}"
PROJECT_ENDPOINTS = FILTERS + "/projects/{project_id}/endpoints"
PROJECT_ENDPOINT = PROJECT_ENDPOINTS + "/{endpoint_id}"


def _link_group(present: bool) -> Any:
    def write(group_id: Id, project_id: Id, caller: Caller, svc: IdentityDep) -> Response:
        authorize(caller, "admin")
        ids = {"endpoint_group_id": group_id, "project_id": project_id}
        ends = {"endpoint_group_id": ENDPOINT_GROUP, "project_id": PROJECT}
        svc.store.set_link(ProjectEndpointGroup, ends, ids, present)
        return Response(status_code=204)

    return write


def _link_endpoint(present: bool) -> Any:
    def write(project_id: Id, endpoint_id: Id, caller: Caller, svc: IdentityDep) -> Response:
        authorize(caller, "admin")
        ids = {"endpoint_id": endpoint_id, "project_id": project_id}
        ends = {"endpoint_id": ENDPOINT, "project_id": PROJECT}
        svc.store.set_link(ProjectEndpoint, ends, ids, present)
        return Response(status_code=204)

    return write


for path, what, linker in (
    (GROUP_PROJECT, "an endpoint group", _link_group),
    (PROJECT_ENDPOINT, "an endpoint", _link_endpoint),
):
    made, gone = f"Associate {what} with a project", f"Dissociate {what} from a project"
    router.put(path, status_code=204, summary=made, responses=READ)(linker(True))
    router.delete(path, status_code=204, summary=gone, responses=READ)(linker(False))


def _group_linked(snapshot: IdentitySnapshot, group_id: str, project_id: str) -> None:
    links = {(a.endpoint_group_id, a.project_id) for a in snapshot.project_endpoint_groups}
    if (group_id, project_id) not in links:
        raise NotFound(f"Endpoint group {group_id} is not associated with project {project_id}.")


@router.get(
    GROUP_PROJECT,
    response_model=OneProject,
    summary="The project an endpoint group is associated with",
    responses=READ,
)
def show_group_project(
    group_id: Id, project_id: Id, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    authorize(caller, "reader")
    snapshot = svc.identity.cached()
    _group_linked(snapshot, group_id, project_id)
    return {"project": render.project(snapshot.projects[project_id], base_url(request))}


@router.head(
    GROUP_PROJECT, status_code=200, summary="Check an endpoint group's project", responses=READ
)
def check_group_project(group_id: Id, project_id: Id, caller: Caller, svc: IdentityDep) -> Response:
    authorize(caller, "reader")
    _group_linked(svc.identity.cached(), group_id, project_id)
    return Response(status_code=200)


def check_endpoint(project_id: Id, endpoint_id: Id, caller: Caller, svc: IdentityDep) -> Response:
    authorize(caller, "reader")
    links = {(a.project_id, a.endpoint_id) for a in svc.identity.cached().project_endpoints}
    if (project_id, endpoint_id) not in links:
        raise NotFound(f"Endpoint {endpoint_id} is not associated with project {project_id}.")
    return Response(status_code=204)


CHECKED = {204: {"description": "Associated"}, **READ}
router.head(
    PROJECT_ENDPOINT, status_code=204, summary="Check a project's endpoint", responses=CHECKED
)(check_endpoint)
router.get(
    PROJECT_ENDPOINT, status_code=204, summary="Check a project's endpoint", responses=CHECKED
)(check_endpoint)


@router.get(
    GROUP_PROJECTS,
    response_model=schemas.ProjectList,
    summary="Projects of an endpoint group",
    responses=READ,
)
def group_projects(
    group_id: Id, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    authorize(caller, "reader")
    snapshot = svc.identity.cached()
    _group(snapshot, group_id)
    ids = _associated(snapshot.project_endpoint_groups, "endpoint_group_id", group_id, "project_id")
    found = _projects(snapshot, ids, base_url(request))
    return {"projects": found, "links": _links(request)}


@router.get(
    FILTERS + "/projects/{project_id}/endpoint_groups",
    response_model=GroupList,
    summary="Endpoint groups of a project",
    responses=READ,
)
def project_groups(
    project_id: Id, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    authorize(caller, "reader")
    snapshot = svc.identity.cached()
    _project_of(snapshot, project_id)
    rows = snapshot.project_endpoint_groups
    ids = _associated(rows, "project_id", project_id, "endpoint_group_id")
    base = base_url(request)
    found = [
        _rendered(snapshot.endpoint_groups[i], base) for i in ids if i in snapshot.endpoint_groups
    ]
    return {"endpoint_groups": found, "links": _links(request)}


@router.get(
    PROJECT_ENDPOINTS, response_model=EndpointList, summary="Endpoints of a project", responses=READ
)
def project_endpoints(
    project_id: Id, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    authorize(caller, "reader")
    snapshot = svc.identity.cached()
    _project_of(snapshot, project_id)
    ids = _associated(snapshot.project_endpoints, "project_id", project_id, "endpoint_id")
    base = base_url(request)
    found = [render.endpoint(snapshot.endpoints[i], base) for i in ids if i in snapshot.endpoints]
    return {"endpoints": found, "links": _links(request)}


@router.get(
    FILTERS + "/endpoints/{endpoint_id}/projects",
    response_model=schemas.ProjectList,
    summary="Projects an endpoint is associated with",
    responses=READ,
)
def endpoint_projects(
    endpoint_id: Id, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    authorize(caller, "reader")
    snapshot = svc.identity.cached()
    if endpoint_id not in snapshot.endpoints:
        raise NotFound(f"Could not find endpoint: {endpoint_id}.")
    ids = _associated(snapshot.project_endpoints, "endpoint_id", endpoint_id, "project_id")
    found = _projects(snapshot, ids, base_url(request))
    return {"projects": found, "links": _links(request)}
