"""Routers, worker side: at every site of the router's networks, the transit network and the
site router's address on it, the site router (``cascade-router-{id}``) with the gateways of
the joined networks present there, its transit interface and its routes; then, once every
transit address is bound, each site's remote ports for the others (the transit network is
stretched like any other). Delete takes all of it away again, then forgets it.
"""

from __future__ import annotations

from typing import Any

from openstack.connection import Connection
from sqlalchemy import delete, select

from cascade.db.network_models import Network, NetworkPort, NetworkSegment, Router, RouterNetwork
from cascade.engine.context import context
from cascade.engine.workflows import (
    Job,
    StepRun,
    at_sites,
    handler,
    require_all,
    step,
    step_function,
)
from cascade.errors import present
from cascade.network.groups import admitted, ensure_group
from cascade.network.port_steps import Segment, ensure_port, locate_port, reconcile_remote_ports
from cascade.network.routers import SitePlan, plan
from cascade.network.segment_steps import (
    TAG,
    ensure_segment,
    remove_segment,
    segment_sites,
    site_network,
)


def _router(router_id: str) -> Router:
    return context().row(Router, router_id, f"router {router_id}")


def _site_plan(router: Router, site_id: str) -> SitePlan:
    with context().db.session() as session:
        found = next((s for s in plan(session, router) if s.site_id == site_id), None)
    return present(found, f"router {router.id} at site {site_id}")


def _site_router(c: Connection, router: Router) -> Any:
    found = c.network.routers(name=f"cascade-router-{router.id}")
    return next(iter(found), None)


def _ensure_router(c: Connection, router: Router, here: SitePlan, transit_port: str) -> None:
    site_router = _site_router(c, router) or c.network.create_router(
        name=f"cascade-router-{router.id}", description=TAG + router.id
    )
    attached = {p.id: p for p in c.network.ports(device_id=site_router.id) if p.device_owner}
    subnets = {ip["subnet_id"] for p in attached.values() for ip in p.fixed_ips}
    for subnet in here.subnets:
        if subnet not in subnets:
            c.network.add_interface_to_router(site_router, subnet=subnet)
    if transit_port not in attached:
        c.network.add_interface_to_router(site_router, port=transit_port)
    routes = [{"destination": dest, "nexthop": hop} for dest, hop in here.routes]
    if sorted(map(str, site_router.routes or [])) != sorted(map(str, routes)):
        c.network.update_router(site_router, routes=routes)


def _members_here(router: Router, site_id: str) -> list[Network]:
    """The networks the router joins that are at the site."""
    with context().db.session() as session:
        return list(
            session.scalars(
                select(Network)
                .join(RouterNetwork, RouterNetwork.network_id == Network.id)
                .join(NetworkSegment, NetworkSegment.network_id == Network.id)
                .where(RouterNetwork.router_id == router.id, NetworkSegment.site_id == site_id)
            )
        )


def _admit_routed(router: Router, site_id: str, leaving: bool) -> None:
    """The joined networks' groups at the site admit the other joined CIDRs (or, when the
    router is leaving, no longer do)."""
    members = _members_here(router, site_id)
    admitting = {n.id: admitted(n, router.id if leaving else None) for n in members}
    context().driver(site_id).call(
        f"admit routed traffic of router {router.name}",
        lambda c: [ensure_group(c, n, admitting[n.id]) for n in members],
    )


@step_function("router.ensure")
def ensure_at(run: StepRun, router_id: str, site_id: str) -> str:
    """The transit network, the site router and its interfaces and routes at the site;
    returns the VTEP its transit address is bound to."""
    router = _router(router_id)
    ensure_segment(run, router.transit_network_id, site_id)
    here = _site_plan(router, site_id)
    transit_port = ensure_port(run, here.transit_port_id)
    context().driver(site_id).call(
        f"set up router {router.name}", lambda c: _ensure_router(c, router, here, transit_port)
    )
    _admit_routed(router, site_id, leaving=False)
    return str(locate_port(run, here.transit_port_id))


def _remove_router(c: Connection, router: Router) -> None:
    site_router = _site_router(c, router)
    if site_router is None:
        return
    if site_router.routes:
        c.network.update_router(site_router, routes=[])
    for port in c.network.ports(device_id=site_router.id):
        if port.device_owner == "network:router_interface":
            c.network.remove_interface_from_router(site_router, port=port.id)
    c.network.delete_router(site_router, ignore_missing=True)


@step_function("router.remove")
def remove_at(run: StepRun, router_id: str, site_id: str) -> None:
    """The site router, then the transit network's remote ports and the network itself."""
    router = _router(router_id)
    with context().db.session() as session:
        transit = present(session.get(Network, router.transit_network_id), "transit network")
        segment = session.get(NetworkSegment, (transit.id, site_id))
    driver = context().driver(site_id)
    driver.call(f"remove router {router.name}", lambda c: _remove_router(c, router))
    _admit_routed(router, site_id, leaving=True)

    def clear(c: Connection) -> None:
        found = site_network(c, transit)
        if found is not None and segment is not None and segment.site_subnet_id:
            reconcile_remote_ports(c, Segment(str(found.id), segment.site_subnet_id), [])
        for port in c.network.ports(network_id=found.id) if found is not None else []:
            if port.name.startswith("cascade-"):
                c.network.delete_port(port.id, ignore_missing=True)

    driver.call("remove the transit ports", clear)
    remove_segment(run, transit.id, site_id)


@step_function("router.sites")
def router_sites(_run: StepRun, router_id: str) -> tuple[str, list[tuple[str, str]]]:
    """(transit network id, (site id, name) of every site of the router)."""
    transit = _router(router_id).transit_network_id
    return transit, segment_sites(transit)


@step_function("router.forget")
def forget(_run: StepRun, router_id: str) -> None:
    router = _router(router_id)
    with context().db.session() as session:
        transit = router.transit_network_id
        session.execute(delete(RouterNetwork).where(RouterNetwork.router_id == router_id))
        session.execute(delete(Router).where(Router.id == router_id))
        session.execute(delete(NetworkPort).where(NetworkPort.network_id == transit))
        session.execute(delete(NetworkSegment).where(NetworkSegment.network_id == transit))
        session.execute(delete(Network).where(Network.id == transit))


@handler("router.create")
@handler("router.sync")
def create(job: Job) -> dict[str, Any]:
    transit, sites = step(job, "find the sites", None, "router.sites", job.resource_id)
    vteps = at_sites(job, sites, "set up router", "router.ensure", job.resource_id)
    require_all(vteps)
    require_all(at_sites(job, sites, "join the transit network", "network.ensure", transit))
    return {"sites": sorted(vteps)}


@handler("router.delete")
def remove(job: Job) -> dict[str, Any]:
    _transit, sites = step(job, "find the sites", None, "router.sites", job.resource_id)
    require_all(at_sites(job, sites, "remove router", "router.remove", job.resource_id))
    step(job, "forget it", None, "router.forget", job.resource_id)
    return {"sites": [name for _id, name in sites]}
