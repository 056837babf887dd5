"""One network's page: its segment at each site, its ports (server, site, address, host), the
service IPs on it, and the fabric's convergence for it: how many of the hosts holding its
ports have applied its newest neighbour table and how many lag (an admin also sees which
hosts, as the admin-only ``/v1/fabric`` shows them); a member may sync it. HTTP only
(``cascade.ui``).

The network is read by ``NetworkService.show`` as ``GET /v1/networks/{id}`` does, its service
IPs by ``ServiceIPService.list``; the ports and the fabric's memberships are one query each
here. A network is on the fabric of this control plane when a fabric network carries its VNI
(the VXLAN segment is the same). A fixed number of statements, however many ports or hosts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from cascade.db.models import FabricMembership, FabricNetwork, Site
from cascade.db.network_models import NetworkPort
from cascade.network.networks import NetworkService
from cascade.network.service_ips import ServiceIPService
from cascade.services import Services
from cascade.ui.session import Viewer, acting, viewer
from cascade.ui.web import HtmlRoute, follow, page, services

router = APIRouter(prefix="/ui", route_class=HtmlRoute, include_in_schema=False)
Who = Annotated[Viewer, Depends(viewer)]
NetworkRef = Annotated[str, Path(min_length=1, max_length=255)]
PORTS = 500  # ports listed (by site, then address); the count covers all of them


@dataclass(frozen=True)
class PortRow:
    server: str | None
    site: str
    ip: str
    mac: str
    host: str | None
    vtep: str | None


@dataclass(frozen=True)
class FabricHostRow:
    name: str
    applied: int
    goal: int

    @property
    def converged(self) -> bool:
        return self.applied >= self.goal


def ports_of(svc: Services, network_id: str) -> list[PortRow]:
    with svc.db.session() as session:
        rows = session.execute(
            select(NetworkPort, Site.name)
            .join(Site, Site.id == NetworkPort.site_id)
            .where(NetworkPort.network_id == network_id)
            .order_by(Site.name, NetworkPort.ip)
            .limit(PORTS)
        ).all()
    return [PortRow(p.server_id, site, p.ip, p.mac, p.host, p.vtep) for p, site in rows]


def fabric_hosts(svc: Services, vni: int) -> list[FabricHostRow] | None:
    """The hosts of the fabric network carrying ``vni`` with the table revision each applied
    against the network's; None when no fabric network carries it."""
    with svc.db.session() as session:
        rows = session.execute(
            select(FabricNetwork.revision, FabricMembership.host, FabricMembership.applied_revision)
            .outerjoin(FabricMembership, FabricMembership.network_id == FabricNetwork.id)
            .where(FabricNetwork.vni == vni)
            .order_by(FabricMembership.host)
        ).all()
    if not rows:
        return None
    return [FabricHostRow(host, applied, goal) for goal, host, applied in rows if host is not None]


@router.get("/networks/{network}", response_class=HTMLResponse)
def network_page(request: Request, who: Who, network: NetworkRef) -> HTMLResponse:
    svc = services(request)
    shown = NetworkService(svc.db, svc.operations).show(network, who.projects)
    service_ips = ServiceIPService(svc.db, svc.operations).list(who.projects)
    hosts = fabric_hosts(svc, shown.vni)
    return page(
        "network.html",
        active="networks",
        viewer=who,
        network=shown,
        ports=ports_of(svc, shown.id),
        port_limit=PORTS,
        service_ips=[sip for sip in service_ips if sip.network_id == shown.id],
        hosts=hosts,
        converged=sum(host.converged for host in hosts or []),
    )


@router.post("/networks/{network}/sync", response_class=HTMLResponse)
async def sync_network(request: Request, who: Who, network: NetworkRef) -> Response:
    """Sync the network at every site as ``POST /v1/networks/{id}/sync`` does."""
    _fields, project_id = await acting(request, who)
    svc = services(request)
    service = NetworkService(svc.db, svc.operations)
    found = await run_in_threadpool(service.show, network, who.projects)
    operation = await run_in_threadpool(service.act, found.id, "sync", project_id, None)
    return follow(operation.id)
