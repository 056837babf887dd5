"""``/v1/fabric`` (admins): the network fabric's hosts, networks and ports, and how far each
host's agent has applied its goal state.

A port change is committed, then published through the process's ``FabricController``;
with ``?wait=N`` the answer comes once every affected host acknowledged it or after N
seconds, saying how many had not (``pending_hosts``, 0 when converged). Acknowledged is not
enforced: a port with security rules on a host whose dataplane does not enforce them (every
dataplane today) is answered with ``rules_enforced: false``, and hosts are listed with the
same truth. ``GoalStore`` calls are synchronous database work and run in a thread, off the
event loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from cascade.api.deps import Caller
from cascade.api.errors import error_responses
from cascade.api.services_dep import ServicesDep
from cascade.errors import NotFound, Unavailable
from cascade.fabric.controller import FabricController
from cascade.fabric.goal import GoalChange, PortSpec
from cascade.fabric.schemas import (
    NAME_PATTERN,
    HostEnvelope,
    HostIn,
    HostList,
    HostOut,
    NetworkEnvelope,
    NetworkIn,
    NetworkOut,
    PortAdded,
    PortIn,
    PortOut,
    PortRemoved,
)
from cascade.identity.policy import authorize

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/fabric", tags=["fabric"])

NetworkId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN, description="Network id")
]
PortId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN, description="Port id")
]
Wait = Annotated[
    float,
    Query(
        ge=0,
        le=300,
        description="Seconds to wait for the affected hosts to apply the change (0: answer at "
        "once)",
    ),
]


# --- the process's controller ---------------------------------------------------------------


async def controller(request: Request) -> FabricController:
    found: FabricController | None = getattr(request.app.state, "fabric", None)
    if found is None:
        raise Unavailable("the fabric controller is not running")
    return found


Controller = Annotated[FabricController, Depends(controller)]


async def _settle(fabric: FabricController, change: GoalChange, wait: float) -> int:
    await fabric.publish(change)
    if wait > 0:
        pending = await fabric.wait(change, wait)
        await fabric.flush()  # what the answer says, the database (GET .../hosts) says too
        return pending
    return await asyncio.to_thread(fabric.goal.tracking.pending, change)


# --- hosts ----------------------------------------------------------------------------------


@router.post(
    "/hosts",
    status_code=201,
    response_model=HostEnvelope,
    summary="Register a compute host and its tunnel endpoint (again with the same endpoint: "
    "unchanged)",
    responses=error_responses(400, 401, 403, 409),
)
async def register_host(body: HostIn, caller: Caller, svc: ServicesDep) -> HostEnvelope:
    authorize(caller, "admin")
    await asyncio.to_thread(svc.fabric.register_host, body.name, body.tunnel_ip)
    found = await asyncio.to_thread(svc.fabric.tracking.host, body.name)
    if found is None:  # deleted in between by another process
        raise NotFound(f"host {body.name} is not registered")
    return HostEnvelope(host=HostOut(**found))


@router.get(
    "/hosts",
    response_model=HostList,
    summary="List hosts with their goal and applied revisions; count converged and lagging "
    "hosts among all of them",
    responses=error_responses(400, 401, 403),
)
async def list_hosts(
    caller: Caller,
    svc: ServicesDep,
    lagging: Annotated[bool, Query(description="Only hosts behind their goal")] = False,
    limit: Annotated[int, Query(ge=1, le=10000, description="Hosts to list, by name")] = 1000,
) -> HostList:
    authorize(caller, "admin")
    tracking = svc.fabric.tracking
    hosts = await asyncio.to_thread(tracking.hosts, lagging, limit)
    converged, behind = await asyncio.to_thread(tracking.counts)
    unenforced = await asyncio.to_thread(tracking.rules_not_enforced)
    return HostList(
        hosts=[HostOut(**host) for host in hosts],
        converged=converged,
        lagging=behind,
        rules_not_enforced=unenforced,
    )


# --- networks -------------------------------------------------------------------------------


@router.post(
    "/networks",
    status_code=201,
    response_model=NetworkEnvelope,
    summary="Create an overlay network (VNI and CIDR)",
    responses=error_responses(400, 401, 403, 409),
)
async def create_network(body: NetworkIn, caller: Caller, svc: ServicesDep) -> NetworkEnvelope:
    authorize(caller, "admin")
    await asyncio.to_thread(svc.fabric.create_network, body.id, body.vni, body.cidr)
    return NetworkEnvelope(network=NetworkOut(id=body.id, vni=body.vni, cidr=body.cidr, revision=0))


@router.delete(
    "/networks/{network_id}",
    status_code=204,
    summary="Delete a network (refused while it has ports)",
    responses=error_responses(401, 403, 404, 409),
)
async def delete_network(network_id: NetworkId, caller: Caller, svc: ServicesDep) -> Response:
    authorize(caller, "admin")
    await asyncio.to_thread(svc.fabric.delete_network, network_id)
    return Response(status_code=204)


# --- ports ----------------------------------------------------------------------------------


@router.post(
    "/ports",
    status_code=201,
    response_model=PortAdded,
    summary="Add a port to a network on a host, publish it to the affected hosts and "
    "optionally wait for them to apply it",
    responses=error_responses(400, 401, 403, 404, 409, 503),
)
async def add_port(
    body: PortIn, caller: Caller, svc: ServicesDep, fabric: Controller, wait: Wait = 0
) -> PortAdded:
    authorize(caller, "admin")
    rules = tuple(rule.as_dict() for rule in body.security_rules)
    spec = PortSpec(body.id, body.network_id, body.host, body.mac, body.ip, rules)
    change = await asyncio.to_thread(svc.fabric.add_port, spec)
    pending = await _settle(fabric, change, wait)
    unenforced = 0
    if rules:
        unenforced = await asyncio.to_thread(svc.fabric.tracking.rules_not_enforced, [body.host])
    return PortAdded(
        port=PortOut(
            id=body.id,
            network_id=body.network_id,
            host=body.host,
            mac=body.mac,
            ip=body.ip,
            security_rules=body.security_rules,
        ),
        network_revision=change.network_revision,
        host_revision=change.host_revision,
        pending_hosts=pending,
        rules_enforced=not rules or (not unenforced and pending == 0),
        hosts_not_enforcing_rules=unenforced,
    )


@router.delete(
    "/ports/{port_id}",
    response_model=PortRemoved,
    summary="Remove a port, publish the removal and optionally wait for the affected hosts "
    "to apply it",
    responses=error_responses(400, 401, 403, 404, 503),
)
async def remove_port(
    port_id: PortId, caller: Caller, svc: ServicesDep, fabric: Controller, wait: Wait = 0
) -> PortRemoved:
    authorize(caller, "admin")
    change = await asyncio.to_thread(svc.fabric.remove_port, port_id)
    pending = await _settle(fabric, change, wait)
    return PortRemoved(
        network_revision=change.network_revision,
        host_revision=change.host_revision,
        pending_hosts=pending,
    )
