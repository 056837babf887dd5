"""Glance's per-project image storage quota: the bytes of a project's images may total at most
the site's limit (``RegionConfig.image_quota_mib``, in MiB as Glance's unified limit
``image_size_total``; None: no limit), counted as Glance's legacy ``user_storage_quota`` counts
them, over the project's other images' sizes. Bytes that would take the project past it are
refused with 413 Request Entity Too Large and Glance's text, for an upload (checked from
``Content-Length`` and again as the bytes stream) and for an import (``glance-direct`` and
``web-download``: the size is known before any byte is written). The limit is set at start
(``cascade site-sim --image-quota-mib``) and at run time by ``PUT /sim/v1/image-quota``
(the site's admin role), which is what ``router`` serves."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from cascade.api.keystone import Caller
from cascade.identity import authorize
from cascade_sim.common import RegionDep
from cascade_sim.errors import SimError
from cascade_sim.region import Region

MIB = 1 << 20

router = APIRouter(prefix="/sim/v1", tags=["sim admin"])


def room(site: Region, owner: str, image_id: str) -> int | None:
    """The bytes image ``image_id`` of project ``owner`` may hold now; None: no limit."""
    limit = site.config.image_quota_mib
    if limit is None:
        return None
    used = sum(
        int(image.get("size") or 0)
        for image in site.state.list("image", owner)
        if image["id"] != image_id
    )
    return max(0, limit * MIB - used)


def exceeded(size: int, remaining: int) -> SimError:
    """Glance's answer to data that would exceed the storage quota."""
    detail = f"The size of the data {size} will exceed the limit. {remaining} bytes remaining."
    return SimError(413, f"Denying attempt to upload image because it exceeds the quota: {detail}")


def require_room(site: Region, owner: str, image_id: str, size: int) -> None:
    """413 if ``size`` bytes for image ``image_id`` would take ``owner`` past the quota."""
    remaining = room(site, owner, image_id)
    if remaining is not None and size > remaining:
        raise exceeded(size, remaining)


class QuotaIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_size_total_mib: int | None = Field(
        description="MiB the images of each project may total at this site; null: no limit.",
        ge=0,
    )


def _limit(site: Region) -> dict[str, Any]:
    return {"image_size_total_mib": site.config.image_quota_mib}


@router.get("/image-quota", summary="The image storage quota per project, and each's usage")
def show_quota(caller: Caller, site: RegionDep) -> dict[str, Any]:
    """The limit, and per project the bytes its images hold (what the limit is checked
    against)."""
    authorize(caller, "admin")
    usage: dict[str, int] = {}
    for image in site.state.list("image"):
        usage[image["owner"]] = usage.get(image["owner"], 0) + int(image.get("size") or 0)
    return {**_limit(site), "usage_bytes": usage}


@router.put("/image-quota", summary="Set the image storage quota per project")
def set_quota(body: QuotaIn, caller: Caller, site: RegionDep) -> dict[str, Any]:
    """Applies to the bytes that arrive from now on; images already stored stay."""
    authorize(caller, "admin")
    site.config.image_quota_mib = body.image_size_total_mib
    return _limit(site)
