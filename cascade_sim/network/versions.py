"""Neutron's discovery documents: the API versions at ``/network``, the resources of v2.0
and the extensions this emulation implements."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Request

from cascade.api.keystone import Caller
from cascade_sim.network.errors import error
from cascade_sim.network.kinds import PREFIX, Json, Kind

EXTENSIONS = {
    "agent": "agent",
    "allowed-address-pairs": "Allowed Address Pairs",
    "binding": "Port Binding",
    "external-net": "Neutron external network",
    "extraroute": "Neutron Extra Route",
    "filter-validation": "Filter parameters validation",
    "net-mtu": "Network MTU",
    "net-mtu-writable": "Network MTU (writable)",
    "pagination": "Pagination support",
    "port-security": "Port Security",
    "project-id": "project_id field enabled",
    "provider": "Provider Network",
    "router": "Neutron L3 Router",
    "security-group": "security-group",
    "sorting": "Sorting support",
    "standard-attr-description": "standard-attr-description",
    "standard-attr-revisions": "Resource revision numbers",
    "standard-attr-tag": "Tag support for resources with standard attribute",
    "standard-attr-timestamp": "Resource timestamps",
}


def _extension(alias: str) -> Json:
    name = EXTENSIONS[alias]
    updated = "2013-01-01T10:00:00-00:00"
    return {"alias": alias, "name": name, "description": name, "updated": updated, "links": []}


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def discovery_router(kinds: Sequence[Kind]) -> APIRouter:
    router = APIRouter(tags=["network"])

    @router.get("/network", include_in_schema=False)
    @router.get("/network/", summary="Neutron API versions")
    def list_versions(request: Request) -> Json:
        link = {"rel": "self", "href": f"{_base(request)}{PREFIX}/"}
        return {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [link]}]}

    @router.get(PREFIX, include_in_schema=False)
    @router.get(f"{PREFIX}/", summary="Neutron v2.0 resources")
    def list_resources(request: Request, _caller: Caller) -> Json:
        return {
            "resources": [
                {
                    "name": kind.name,
                    "collection": kind.plural,
                    "links": [{"rel": "self", "href": f"{_base(request)}{kind.path}"}],
                }
                for kind in kinds
            ]
        }

    @router.get(f"{PREFIX}/extensions", summary="Neutron extensions")
    def list_extensions(_caller: Caller) -> Json:
        return {"extensions": [_extension(alias) for alias in EXTENSIONS]}

    @router.get(f"{PREFIX}/extensions/{{alias}}", summary="One Neutron extension")
    def show_extension(alias: str, _caller: Caller) -> Json:
        if alias not in EXTENSIONS:
            raise error(404, "ExtensionNotFound", f"Extension with alias {alias} does not exist")
        return {"extension": _extension(alias)}

    return router
