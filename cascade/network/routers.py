"""Routers between networks that span sites, API side: the plan (what each site's router
holds) and accepting create and delete as operations.

A router joins networks of one project (at least two, CIDRs not overlapping). At every site
where one of them is, a site router holds the gateway of each joined network present there
and an address on the router's transit network: a network of its own (allocated like any
other: its VNI, a /24 of 100.64.0.0/10, the shared address space of RFC 6598), stretched over
all those sites. A network absent from a site is routed over the transit network to the site
router of the first site (by name) where it is. A network present at several sites has its
gateway at each of them, so each site's VMs leave through their own site's router.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.models import Operation, Site
from cascade.db.network_models import Network, NetworkPort, NetworkSegment, Router, RouterNetwork
from cascade.engine.operations import Operations
from cascade.engine.states import StateMachine, declare, transition
from cascade.errors import BadRequest, Conflict, NotFound
from cascade.identity.policy import seen_by
from cascade.network.networks import find as find_network
from cascade.network.networks import insert_network
from cascade.network.ports import allocate
from cascade.network.schemas import RouterIn, RouterOut, RouterSiteOut

TRANSIT_POOL = ipaddress.ip_network("100.64.0.0/10")
TRANSIT_PREFIX = 24

ROUTERS = declare(
    StateMachine(
        "router",
        Router,
        {
            "create": transition((), "BUILD", "ACTIVE"),
            "sync": transition(("ACTIVE", "ERROR"), "BUILD", "ACTIVE"),
            "delete": transition(("ACTIVE", "ERROR"), "DELETING", None),
        },
    )
)


@dataclass
class SitePlan:
    """What one site's router holds."""

    site_id: str
    site_name: str
    transit_port_id: str
    transit_ip: str
    subnets: list[str] = field(default_factory=list)  # joined networks' subnets at the site
    routes: list[tuple[str, str]] = field(default_factory=list)  # (destination, next hop)


def plan(session: Session, router: Router) -> list[SitePlan]:
    """Every site's router, by site name."""
    members = list(
        session.scalars(
            select(Network)
            .join(RouterNetwork, RouterNetwork.network_id == Network.id)
            .where(RouterNetwork.router_id == router.id)
            .order_by(Network.name)
        )
    )
    transit_ports = session.execute(
        select(NetworkPort, Site.name)
        .join(Site, Site.id == NetworkPort.site_id)
        .where(NetworkPort.network_id == router.transit_network_id)
        .order_by(Site.name)
    ).all()
    sites = [SitePlan(p.site_id, name, p.id, p.ip) for p, name in transit_ports]
    by_site = {s.site_id: s for s in sites}
    for network in members:
        segments = {
            seg.site_id: seg
            for seg in session.scalars(
                select(NetworkSegment).where(NetworkSegment.network_id == network.id)
            )
        }
        home = next((s for s in sites if s.site_id in segments), None)
        for site in sites:
            segment = segments.get(site.site_id)
            if segment is not None:
                site.subnets += [segment.site_subnet_id] if segment.site_subnet_id else []
            elif home is not None:
                site.routes.append((network.cidr, by_site[home.site_id].transit_ip))
    return sites


def _transit_cidr(session: Session) -> str:
    used = {
        ipaddress.ip_network(cidr)
        for cidr in session.scalars(select(Network.cidr))
        if ipaddress.ip_network(cidr).subnet_of(TRANSIT_POOL)  # type: ignore[arg-type]
    }
    for candidate in TRANSIT_POOL.subnets(new_prefix=TRANSIT_PREFIX):
        if not any(candidate.overlaps(u) for u in used):
            return str(candidate)
    raise Conflict("the transit address pool 100.64.0.0/10 is used up")


def _members(session: Session, spec: RouterIn, projects: set[str] | None) -> list[Network]:
    members = {n.id: n for n in (find_network(session, name, projects) for name in spec.networks)}
    if len(members) < 2:
        raise BadRequest("a router joins at least two different networks")
    nets = sorted(members.values(), key=lambda n: n.name)
    for i, one in enumerate(nets):
        for other in nets[i + 1 :]:
            if ipaddress.ip_network(one.cidr).overlaps(ipaddress.ip_network(other.cidr)):
                raise BadRequest(
                    f"networks {one.name} ({one.cidr}) and {other.name} ({other.cidr}) "
                    "overlap: a router cannot join them"
                )
        if ipaddress.ip_network(one.cidr).overlaps(TRANSIT_POOL):
            raise BadRequest(f"network {one.name} overlaps the transit pool {TRANSIT_POOL}")
    return nets


def to_out(session: Session, router: Router) -> RouterOut:
    names = session.scalars(
        select(Network.name)
        .join(RouterNetwork, RouterNetwork.network_id == Network.id)
        .where(RouterNetwork.router_id == router.id)
        .order_by(Network.name)
    )
    transit = session.get(Network, router.transit_network_id)
    return RouterOut(
        id=router.id,
        name=router.name,
        project_id=router.project_id,
        networks=list(names),
        transit_network=transit.name if transit else "",
        status=router.status,
        task=router.task_operation_id,
        error=router.error,
        sites={
            s.site_name: RouterSiteOut(
                transit_ip=s.transit_ip, routes=[f"{dest} via {hop}" for dest, hop in s.routes]
            )
            for s in plan(session, router)
        },
        created_at=router.created_at,
    )


def find(session: Session, name_or_id: str, projects: set[str] | None) -> Router:
    query = select(Router).where((Router.id == name_or_id) | (Router.name == name_or_id))
    query = seen_by(query, Router.project_id, projects)
    found = session.scalars(query.order_by(Router.id != name_or_id)).first()
    if found is None:
        raise NotFound(f"Could not find router: {name_or_id}.")
    return found


class RouterService:
    def __init__(self, db: Database, operations: Operations) -> None:
        self._db = db
        self._operations = operations

    def show(self, name_or_id: str, projects: set[str] | None) -> RouterOut:
        with self._db.session() as session:
            return to_out(session, find(session, name_or_id, projects))

    def list(self, projects: set[str] | None) -> list[RouterOut]:
        with self._db.session() as session:
            query = select(Router).order_by(Router.project_id, Router.name)
            query = seen_by(query, Router.project_id, projects)
            return [to_out(session, router) for router in session.scalars(query)]

    def create(
        self, spec: RouterIn, project_id: str, projects: set[str] | None, key: str | None
    ) -> Operation:
        """Accept a create; returns its operation (its ``resource_id`` is the router's)."""

        def write(session: Session, operation_id: str) -> tuple[str, str]:
            members = _members(session, spec, projects)
            site_ids = set(
                session.scalars(
                    select(NetworkSegment.site_id).where(
                        NetworkSegment.network_id.in_([n.id for n in members])
                    )
                )
            )
            transit = Network(
                name=f"{spec.name}-transit",
                project_id=project_id,
                cidr=_transit_cidr(session),
                status="ACTIVE",
            )
            insert_network(session, transit)
            router = Router(
                name=spec.name,
                project_id=project_id,
                transit_network_id=transit.id,
                status="BUILD",
                task_operation_id=operation_id,
            )
            session.add(router)
            session.flush()
            session.add_all(RouterNetwork(router_id=router.id, network_id=n.id) for n in members)
            for site in session.scalars(select(Site).where(Site.id.in_(site_ids))):
                session.add(
                    NetworkSegment(network_id=transit.id, site_id=site.id, status="pending")
                )
                allocate(session, transit, site, None, None)
            return "router", router.id

        return self._operations.accept(
            kind="router.create",
            project_id=project_id,
            request=spec.model_dump(),
            write=write,
            idempotency_key=key,
        )

    def act(self, router_id: str, action: str, project_id: str, key: str | None) -> Operation:
        return self._operations.act(ROUTERS, router_id, action, project_id, key)
