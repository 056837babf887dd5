"""Neutron's HTTP routes: discovery, one CRUD router per resource kind, the tag API every
collection shares, and a router's interface actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response

from cascade.api.keystone import Caller
from cascade.identity import AuthContext
from cascade_sim.common import RegionDep
from cascade_sim.errors import SimError
from cascade_sim.network import agents, resources
from cascade_sim.network.collection import fields, grouped, list_collection, select
from cascade_sim.network.errors import bad, error, invalid
from cascade_sim.network.floating_ips import FLOATINGIP
from cascade_sim.network.kinds import PREFIX, Json, Kind, actor_of
from cascade_sim.network.l3 import ROUTER, add_interface, remove_interface
from cascade_sim.network.networks import NETWORK
from cascade_sim.network.ports import PORT
from cascade_sim.network.security_groups import SECURITY_GROUP, SECURITY_GROUP_RULE
from cascade_sim.network.store import revise
from cascade_sim.network.subnets import SUBNET
from cascade_sim.network.versions import discovery_router
from cascade_sim.region import Region

JsonBody = Annotated[Any, Body()]

KINDS = (NETWORK, SUBNET, PORT, SECURITY_GROUP, SECURITY_GROUP_RULE, ROUTER, FLOATINGIP)


def _crud_router(kind: Kind) -> APIRouter:
    router = APIRouter(prefix=kind.path, tags=["network"])

    @router.get("", summary=f"List {kind.plural}")
    def list_all(request: Request, caller: Caller, site: RegionDep) -> Json:
        return list_collection(site, kind, actor_of(caller), request)

    @router.post("", status_code=201, summary=f"Create a {kind.name}")
    def create(body: JsonBody, caller: Caller, site: RegionDep) -> Json:
        actor = actor_of(caller)
        created = resources.create(site, kind, actor, body)
        return {kind.name: resources.render_one(site, kind, actor, created)}

    @router.get("/{resource_id}", summary=f"Show a {kind.name}")
    def show(resource_id: str, request: Request, caller: Caller, site: RegionDep) -> Json:
        actor = actor_of(caller)
        view = resources.render_one(
            site, kind, actor, resources.load(site, kind, actor, resource_id)
        )
        return {kind.name: select(view, fields(grouped(request)))}

    @router.put("/{resource_id}", summary=f"Update a {kind.name}")
    def update(resource_id: str, body: JsonBody, caller: Caller, site: RegionDep) -> Json:
        actor = actor_of(caller)
        changed = resources.update(site, kind, actor, resource_id, body)
        return {kind.name: resources.render_one(site, kind, actor, changed)}

    @router.delete("/{resource_id}", status_code=204, summary=f"Delete a {kind.name}")
    def delete(resource_id: str, caller: Caller, site: RegionDep) -> Response:
        resources.delete(site, kind, actor_of(caller), resource_id)
        return Response(status_code=204)

    return router


# -- tags ------------------------------------------------------------------------------------


def _tag(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 255:
        raise invalid("tags", f"'{value}' is not a string of 1 to 255 characters")
    return value


def _tag_missing(tag: str) -> SimError:
    return error(404, "TagNotFound", f"Tag {tag} could not be found.")


def _tags(site: Region, collection: str, caller: AuthContext, resource_id: str) -> list[str]:
    body = resources.load(site, _kind_at(collection), actor_of(caller), resource_id)
    return list(body["tags"])


def _retag(
    site: Region,
    collection: str,
    caller: AuthContext,
    resource_id: str,
    edit: Callable[[list[str]], list[str]],
) -> list[str]:
    kind = _kind_at(collection)
    with site.state.lock:
        body = resources.writable(site, kind, actor_of(caller), resource_id)
        body["tags"] = edit(body["tags"])
        revise(site, kind.name, body)
    return list(body["tags"])


def _without(tag: str) -> Callable[[list[str]], list[str]]:
    def edit(tags: list[str]) -> list[str]:
        if tag not in tags:
            raise _tag_missing(tag)
        return [existing for existing in tags if existing != tag]

    return edit


def _kind_at(collection: str) -> Kind:
    for kind in KINDS:
        if kind.path == f"{PREFIX}/{collection}":
            return kind
    raise error(404, "NotFound", f"The resource could not be found: {collection}.")


def _tag_router() -> APIRouter:
    """Neutron's tag API, the same for every collection."""
    router = APIRouter(prefix=f"{PREFIX}/{{collection}}/{{resource_id}}/tags", tags=["network"])

    @router.get("", summary="List a resource's tags")
    def list_tags(collection: str, resource_id: str, caller: Caller, site: RegionDep) -> Json:
        return {"tags": _tags(site, collection, caller, resource_id)}

    @router.put("", summary="Replace a resource's tags")
    def replace_tags(
        collection: str, resource_id: str, body: JsonBody, caller: Caller, site: RegionDep
    ) -> Json:
        if not isinstance(body, dict) or not isinstance(body.get("tags"), list):
            raise bad("Unable to find 'tags' in request body")
        tags = list(dict.fromkeys(_tag(tag) for tag in body["tags"]))
        return {"tags": _retag(site, collection, caller, resource_id, lambda _old: tags)}

    @router.delete("", status_code=204, summary="Remove a resource's tags")
    def remove_tags(collection: str, resource_id: str, caller: Caller, site: RegionDep) -> Response:
        _retag(site, collection, caller, resource_id, lambda _old: [])
        return Response(status_code=204)

    @router.get("/{tag}", status_code=204, summary="Check a tag")
    def check_tag(
        collection: str, resource_id: str, tag: str, caller: Caller, site: RegionDep
    ) -> Response:
        if tag not in _tags(site, collection, caller, resource_id):
            raise _tag_missing(tag)
        return Response(status_code=204)

    @router.put("/{tag}", status_code=201, summary="Add a tag")
    def add_tag(
        collection: str, resource_id: str, tag: str, caller: Caller, site: RegionDep
    ) -> Response:
        checked = _tag(tag)
        _retag(
            site, collection, caller, resource_id, lambda old: list(dict.fromkeys([*old, checked]))
        )
        return Response(status_code=201)

    @router.delete("/{tag}", status_code=204, summary="Remove a tag")
    def remove_tag(
        collection: str, resource_id: str, tag: str, caller: Caller, site: RegionDep
    ) -> Response:
        _retag(site, collection, caller, resource_id, _without(tag))
        return Response(status_code=204)

    return router


# -- router interfaces -----------------------------------------------------------------------


def _interface_router() -> APIRouter:
    router = APIRouter(prefix=f"{PREFIX}/routers", tags=["network"])

    @router.put("/{router_id}/add_router_interface", summary="Attach a subnet or port")
    def add_router_interface(
        router_id: str, body: JsonBody, caller: Caller, site: RegionDep
    ) -> Json:
        return add_interface(site, actor_of(caller), router_id, body)

    @router.put("/{router_id}/remove_router_interface", summary="Detach a subnet or port")
    def remove_router_interface(
        router_id: str, body: JsonBody, caller: Caller, site: RegionDep
    ) -> Json:
        return remove_interface(site, actor_of(caller), router_id, body)

    return router


def routers() -> list[APIRouter]:
    crud = (_crud_router(kind) for kind in KINDS)
    return [discovery_router(KINDS), agents.router, _interface_router(), _tag_router(), *crud]
