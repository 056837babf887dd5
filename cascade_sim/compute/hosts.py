"""Availability zones, hypervisors and compute services: the site's simulated compute hosts
(one ``nova-compute`` each) and its controller (``nova-scheduler``, ``nova-conductor``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from cascade.api.keystone import Caller
from cascade.identity import authorize
from cascade_sim.common import RegionDep
from cascade_sim.compute.records import servers_per_host
from cascade_sim.microversions import Microversion, NovaVersion
from cascade_sim.region import Region
from cascade_sim.state import now_iso

router = APIRouter(prefix="/compute/v2.1", tags=["compute"])


@router.get("/os-availability-zone", summary="Availability zones")
@router.get("/os-availability-zone/detail", summary="Availability zones with hosts")
def availability_zones(_caller: Caller, site: RegionDep) -> dict[str, Any]:
    hosts = {h.name: {"nova-compute": {"available": True, "active": True}} for h in site.hosts}
    return {
        "availabilityZoneInfo": [
            {"zoneName": "nova", "zoneState": {"available": True}, "hosts": hosts}
        ]
    }


def _hypervisor(site: Region, index: int, running: dict[str, int] | None) -> dict[str, Any]:
    """A hypervisor; with ``running`` (servers per host), its detailed view."""
    host = site.hosts[index]
    body: dict[str, Any] = {
        "id": str(index + 1),
        "hypervisor_hostname": host.name,
        "state": "up",
        "status": "enabled",
    }
    if running is not None:
        body.update(
            {
                "host_ip": host.tunnel_ip,
                "hypervisor_type": "QEMU",
                "running_vms": running[host.name],
                "service": {"host": host.name, "id": index + 1},
                "vcpus": 64,
                "memory_mb": 262144,
                "local_gb": 2048,
            }
        )
    return body


@router.get("/os-hypervisors", summary="Compute hosts (admin)")
@router.get("/os-hypervisors/detail", summary="Compute hosts with tunnel IPs (admin)")
def hypervisors(request: Request, caller: Caller, site: RegionDep) -> dict[str, Any]:
    authorize(caller, "admin")
    running = servers_per_host(site) if request.url.path.endswith("/detail") else None
    return {"hypervisors": [_hypervisor(site, i, running) for i in range(len(site.hosts))]}


def _services(site: Region) -> list[tuple[str, str, str]]:
    """(binary, host, zone) of every service the region runs."""
    controller = f"{site.config.name}-controller"
    return [
        ("nova-scheduler", controller, "internal"),
        ("nova-conductor", controller, "internal"),
        *(("nova-compute", host.name, "nova") for host in site.hosts),
    ]


def _service(
    site: Region, index: int, binary: str, host: str, zone: str, mv: Microversion
) -> dict[str, Any]:
    uuids = mv >= Microversion(2, 53)  # service ids are UUIDs from 2.53 on
    service_id: str | int = (
        str(uuid.uuid5(uuid.NAMESPACE_URL, f"{site.config.name}/{binary}/{host}"))
        if uuids
        else index + 1
    )
    body: dict[str, Any] = {
        "id": service_id,
        "binary": binary,
        "host": host,
        "zone": zone,
        "status": "enabled",
        "state": "up",
        "updated_at": now_iso(),
        "disabled_reason": None,
    }
    if mv >= Microversion(2, 11):
        body["forced_down"] = False
    return body


@router.get("/os-services", summary="Compute services (admin)")
def services(
    caller: Caller,
    site: RegionDep,
    mv: NovaVersion,
    host: Annotated[str | None, Query(max_length=255)] = None,
    binary: Annotated[str | None, Query(max_length=255)] = None,
) -> dict[str, Any]:
    authorize(caller, "admin")
    return {
        "services": [
            _service(site, index, service_binary, service_host, zone, mv)
            for index, (service_binary, service_host, zone) in enumerate(_services(site))
            if host in (None, service_host) and binary in (None, service_binary)
        ]
    }
