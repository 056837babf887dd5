"""Keystone version discovery: ``GET /identity`` (version list) and ``GET /identity/v3``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

router = APIRouter(tags=["identity versions"])

MEDIA_TYPE = "application/vnd.openstack.identity-v3+json"


class VersionLink(BaseModel):
    rel: str
    href: str


class Version(BaseModel):
    id: str
    status: str
    updated: str
    links: list[VersionLink]
    media_types: list[dict[str, str]] = Field(alias="media-types")  # Keystone's spelling


class VersionDocument(BaseModel):
    version: Version


class VersionValues(BaseModel):
    values: list[Version]


class VersionList(BaseModel):
    versions: VersionValues


def _v3(request: Request) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": f"{base}/identity/v3/"}],
        "media-types": [{"base": "application/json", "type": MEDIA_TYPE}],
    }


@router.get(
    "/identity",
    status_code=300,
    response_model=VersionList,
    responses={300: {"model": VersionList, "description": "The identity API versions"}},
    summary="List identity API versions",
)
def list_versions(request: Request) -> JSONResponse:
    return JSONResponse({"versions": {"values": [_v3(request)]}}, status_code=300)


@router.get("/identity/v3", response_model=VersionDocument, summary="Identity v3 version")
def show_v3(request: Request) -> dict[str, Any]:
    return {"version": _v3(request)}
