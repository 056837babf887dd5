"""Availability zones and hypervisors: the site's simulated compute hosts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from cascade.api.keystone import Caller
from cascade.identity import authorize
from cascade_sim.common import RegionDep
from cascade_sim.compute.records import servers_per_host
from cascade_sim.region import Region

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
