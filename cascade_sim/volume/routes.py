"""The Cinder routers and where they are mounted: ``/volume`` (versions), ``/volume/v3`` and
``/volume/v3/{project_id}`` (every API, behind recovery and microversion negotiation),
``/sim/v1/volumes``, the block-data service ``/block-data/v1`` and ``/sim/v1/block-io``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from cascade.api.keystone import Caller
from cascade_sim.errors import SimError
from cascade_sim.volume.actions import volume_actions
from cascade_sim.volume.backups import backups
from cascade_sim.volume.block_data import block_data, sim_block_io
from cascade_sim.volume.data import sim
from cascade_sim.volume.group_types import group_types
from cascade_sim.volume.groups import group_snapshots, groups
from cascade_sim.volume.manage import manageable
from cascade_sim.volume.recovery import recovered
from cascade_sim.volume.snapshots import snapshots
from cascade_sim.volume.versions import CinderVersion, versions
from cascade_sim.volume.volume_types import types
from cascade_sim.volume.volumes import volumes

API_ROUTERS = (
    volumes,
    volume_actions,
    types,
    snapshots,
    group_types,
    groups,
    group_snapshots,
    backups,
    manageable,
)


def _prepare(_recovery: Annotated[None, Depends(recovered)], _mv: CinderVersion) -> None:
    """Before every Cinder request: recovery done, the microversion negotiated and echoed."""


def _url_project(project_id: str, caller: Caller) -> None:
    if caller.project is None or caller.project.id != project_id:
        raise SimError(
            400, f"Malformed request URL: project_id {project_id} is not the token's project."
        )


def _mounted(prefix: str, *checks: Any, in_schema: bool = True) -> APIRouter:
    mounted = APIRouter(prefix=prefix, tags=["volume"], dependencies=[Depends(_prepare), *checks])
    for part in API_ROUTERS:
        mounted.include_router(part, include_in_schema=in_schema)
    return mounted


def routers() -> list[APIRouter]:
    """Every router of the emulated Cinder, for the site-sim app."""
    return [
        versions,
        _mounted("/volume/v3"),
        _mounted("/volume/v3/{project_id}", Depends(_url_project), in_schema=False),
        sim,
        block_data,
        sim_block_io,
    ]
