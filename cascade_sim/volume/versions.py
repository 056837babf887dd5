"""Cinder's version documents at ``/volume`` and ``/volume/v3``, the microversions this
region serves, and the gate of the APIs that need a later one than 3.0."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from cascade_sim.errors import SimError
from cascade_sim.microversions import Microversion, VersionRange
from cascade_sim.volume.records import Json

CINDER = VersionRange("volume", None, Microversion(3, 0), Microversion(3, 70))
CinderVersion = Annotated[Microversion, CINDER.dependency()]


def requires(minimum: Microversion) -> Any:
    """A dependency answering 404, as Cinder does, to a request below ``minimum``."""

    def check(mv: CinderVersion) -> None:
        if mv < minimum:
            raise SimError(
                404,
                f"The resource could not be found: it needs OpenStack-API-Version: volume "
                f"{minimum} or later (this request used {mv}).",
            )

    return Depends(check)


def _version_doc(request: Request) -> Json:
    base = str(request.base_url).rstrip("/")
    return {
        "id": "v3.0",
        "status": "CURRENT",
        "version": str(CINDER.maximum),
        "min_version": str(CINDER.minimum),
        "updated": "2023-05-12T00:00:00Z",
        "links": [
            {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
            {"rel": "self", "href": f"{base}/volume/v3/"},
        ],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}
        ],
    }


versions = APIRouter(prefix="/volume", tags=["volume"])


@versions.get("/", status_code=300, summary="Block storage API versions")
def list_versions(request: Request, _mv: CinderVersion) -> Json:
    return {"versions": [_version_doc(request)]}


@versions.get("/v3", summary="Block storage v3 version document")
@versions.get("/v3/", include_in_schema=False)
def show_version(request: Request, _mv: CinderVersion) -> Json:
    return {"version": _version_doc(request)}
