"""``/sim/v1``: the emulator's own admin API (never part of OpenStack): faults, site facts,
servers' freezes and thaws, and the compute hosts' dataplanes. Needs the site's admin role."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from cascade.api.keystone import Caller
from cascade.identity import authorize
from cascade_sim import network
from cascade_sim.common import RegionDep
from cascade_sim.errors import SimError
from cascade_sim.faults import RouteErrors

router = APIRouter(prefix="/sim/v1", tags=["sim admin"])


class RouteErrorsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: str = Field("*", pattern=r"^(\*|GET|POST|PUT|PATCH|DELETE|HEAD)$")
    path_prefix: str = Field(min_length=1, max_length=512, pattern=r"^/")
    rate: float = Field(ge=0, le=1)
    status: int = Field(500, ge=400, le=599)


class FaultsIn(BaseModel):
    """Every field given replaces that fault; omitted fields are left as they are."""

    model_config = ConfigDict(extra="forbid")
    latency: dict[str, float] | None = Field(
        None,
        description="Seconds added per service (compute, volume, network, image, "
        "object-store, block-data, identity, or * for all).",
    )
    route_errors: list[RouteErrorsIn] | None = None
    unavailable: bool | None = Field(None, description="Every service answers 503.")
    quiesce_failures: list[str] | None = Field(
        None, description="Server ids or names whose quiesce fails."
    )
    backup_failure_at: float | None = Field(
        None, ge=0, le=1, description="The next backup fails after this fraction of its bytes."
    )
    block_read_failures_after: int | None = Field(
        None, ge=0, description="After this many more block reads, block reads answer 500."
    )
    cut_from_master: bool | None = Field(
        None, description="The site's link to the identity master it follows is down."
    )


def _faults_view(site: RegionDep) -> dict[str, Any]:
    faults = site.faults
    return {
        "latency": faults.latency,
        "route_errors": [vars(rule) for rule in faults.route_errors],
        "unavailable": faults.unavailable,
        "quiesce_failures": sorted(faults.quiesce_failures),
        "backup_failure_at": faults.backup_failure_at,
        "block_read_failures_after": faults.block_read_failures_after,
        "cut_from_master": faults.cut_from_master,
    }


@router.get("/faults", summary="Faults in force")
def show_faults(caller: Caller, site: RegionDep) -> dict[str, Any]:
    authorize(caller, "admin")
    return _faults_view(site)


@router.put("/faults", summary="Set faults")
def set_faults(body: FaultsIn, caller: Caller, site: RegionDep) -> dict[str, Any]:
    authorize(caller, "admin")
    faults = site.faults
    if body.latency is not None:
        faults.latency = dict(body.latency)
    if body.route_errors is not None:
        faults.route_errors = [RouteErrors(**rule.model_dump()) for rule in body.route_errors]
    if body.unavailable is not None:
        faults.unavailable = body.unavailable
    if body.quiesce_failures is not None:
        faults.quiesce_failures = set(body.quiesce_failures)
    if "backup_failure_at" in body.model_fields_set:
        faults.backup_failure_at = body.backup_failure_at
    if "block_read_failures_after" in body.model_fields_set:
        faults.block_read_failures_after = body.block_read_failures_after
    if body.cut_from_master is not None:
        faults.cut_from_master = body.cut_from_master
    return _faults_view(site)


@router.delete("/faults", status_code=204, summary="Clear every fault")
def clear_faults(caller: Caller, site: RegionDep) -> Response:
    authorize(caller, "admin")
    site.faults.clear()
    return Response(status_code=204)


class OutageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(gt=0, le=3600, description="How long the site refuses connections.")


@router.post("/outage", status_code=202, summary="Refuse every connection for a while")
async def outage(body: OutageIn, caller: Caller, request: Request) -> dict[str, Any]:
    """The whole site becomes unreachable (connection refused) shortly after this answers,
    and comes back after ``seconds`` with its state intact."""
    authorize(caller, "admin")
    server = getattr(request.app.state, "server", None)
    if server is None:
        raise SimError(409, "This site-sim is not serving over a socket it can close.")
    loop = asyncio.get_running_loop()
    loop.call_later(0.1, lambda: loop.create_task(server.outage(body.seconds)))
    return {"outage_seconds": body.seconds}


@router.get("/site", summary="The site's name, region and compute hosts")
def show_site(_caller: Caller, site: RegionDep) -> dict[str, Any]:
    return {
        "name": site.config.name,
        "region": site.config.region_name,
        "hosts": [{"name": h.name, "tunnel_ip": h.tunnel_ip} for h in site.hosts],
    }


@router.get("/quiesces", summary="Every server's freezes and thaws, in order, with their times")
def show_quiesces(caller: Caller, site: RegionDep) -> dict[str, Any]:
    """Per server: whether it is frozen now and each quiesce/unquiesce it took (``action``,
    ``at`` in epoch seconds), so the order of a barrier's freezes and thaws can be checked."""
    authorize(caller, "admin")
    return {
        "servers": [
            {
                "id": s["id"],
                "name": s["name"],
                "frozen": s["_frozen"],
                "events": s.get("_quiesces", []),
            }
            for s in site.state.list("server")
        ]
    }


@router.get("/dataplane", summary="The compute hosts' dataplanes and the ports they hold")
async def show_dataplane(caller: Caller, site: RegionDep) -> dict[str, Any]:
    """The dataplane kind (memory or linux) and underlay; per host its name, VTEP, namespace
    (linux), convergence and, per network it is on, the neighbour table its dataplane holds;
    per port held at a host, that host and its VM namespace (linux: where a server's
    "console" runs)."""
    authorize(caller, "admin")
    return await network.running(site).view()


def routers() -> list[APIRouter]:
    return [router]
