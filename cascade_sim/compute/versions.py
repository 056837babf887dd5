"""Nova's version documents at ``/compute`` and ``/compute/v2.1``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

router = APIRouter(prefix="/compute", tags=["compute"])


def _version(request: Request) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": "2.96",
        "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base}/compute/v2.1/"}],
        "media-types": [
            {
                "base": "application/json",
                "type": "application/vnd.openstack.compute+json;version=2.1",
            }
        ],
    }


@router.get("/", summary="Compute API versions")
def versions(request: Request) -> dict[str, Any]:
    return {"versions": [_version(request)]}


@router.get("/v2.1", summary="Compute v2.1 version document")
@router.get("/v2.1/", include_in_schema=False)
def version(request: Request) -> dict[str, Any]:
    return {"version": _version(request)}
