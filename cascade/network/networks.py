"""Networks: the state machine and accepting each action as an operation (the API side).

Creating one allocates its VNI, records a pending segment per site and accepts a
``network.create`` operation that makes it at every site in parallel; ``network.sync`` does
the same again (a retry after a site failed, and the convergence pass's repair);
``network.delete`` removes it everywhere and, once every site is clean, the row and its VNI.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.models import Operation, Site
from cascade.db.network_models import Network, NetworkPort, NetworkSegment, RouterNetwork
from cascade.engine.operations import Operations
from cascade.engine.states import StateMachine, declare, transition
from cascade.errors import BadRequest, Conflict, NotFound
from cascade.identity.policy import seen_by
from cascade.network.addresses import gateway, network_of, next_vni
from cascade.network.schemas import NetworkIn, NetworkOut, SegmentOut
from cascade.sites.registry import IN_SERVICE

NETWORKS = declare(
    StateMachine(
        "network",
        Network,
        {
            "create": transition((), "BUILD", "ACTIVE"),
            "sync": transition(("ACTIVE", "ERROR"), "BUILD", "ACTIVE"),
            "delete": transition(("ACTIVE", "ERROR"), "DELETING", None),
        },
    )
)


def visible_sites(session: Session, projects: set[str] | None) -> list[Site]:
    query = select(Site).where(IN_SERVICE).order_by(Site.name)
    query = seen_by(query, Site.project_id, projects)
    return list(session.scalars(query))


def visible_site(session: Session, name: str, projects: set[str] | None) -> Site:
    """The site in service named ``name`` (or with that id) that ``projects`` see; 400 if
    there is none."""
    site = next((s for s in visible_sites(session, projects) if name in (s.id, s.name)), None)
    if site is None:
        raise BadRequest(f"Unknown site {name!r}: it is not registered or not visible.")
    return site


def _chosen_sites(session: Session, wanted: list[str], projects: set[str] | None) -> list[Site]:
    chosen = {site.id: site for site in (visible_site(session, n, projects) for n in wanted)}
    return list(chosen.values())


def to_out(session: Session, network: Network) -> NetworkOut:
    return outs(session, [network])[0]


def outs(session: Session, networks: list[Network]) -> list[NetworkOut]:
    """The networks as shown, their segments and port counts read in one query each,
    however many networks there are."""
    ids = [network.id for network in networks]
    segments: dict[str, list[tuple[NetworkSegment, str]]] = {}
    for segment, site in session.execute(
        select(NetworkSegment, Site.name)
        .join(Site, Site.id == NetworkSegment.site_id)
        .where(NetworkSegment.network_id.in_(ids))
        .order_by(Site.name)
    ):
        segments.setdefault(segment.network_id, []).append((segment, site))
    ports: dict[str, int] = dict(
        session.execute(
            select(NetworkPort.network_id, func.count())
            .where(NetworkPort.network_id.in_(ids))
            .group_by(NetworkPort.network_id)
        ).all()
    )
    return [
        _out(network, segments.get(network.id, []), ports.get(network.id, 0))
        for network in networks
    ]


def _out(network: Network, segments: list[tuple[NetworkSegment, str]], ports: int) -> NetworkOut:
    return NetworkOut(
        id=network.id,
        name=network.name,
        project_id=network.project_id,
        cidr=network.cidr,
        gateway_ip=gateway(network.cidr),
        vni=network.vni,
        status=network.status,
        task=network.task_operation_id,
        error=network.error,
        ports=ports,
        sites={
            name: SegmentOut(
                status=segment.status, site_network_id=segment.site_network_id, error=segment.error
            )
            for segment, name in segments
        },
        created_at=network.created_at,
    )


def find(session: Session, name_or_id: str, projects: set[str] | None) -> Network:
    """The network with this id, or this name in one of ``projects`` (None: any); else 404."""
    query = select(Network).where((Network.id == name_or_id) | (Network.name == name_or_id))
    query = seen_by(query, Network.project_id, projects)
    found = session.scalars(query.order_by(Network.id != name_or_id)).first()
    if found is None:
        raise NotFound(f"Could not find network: {name_or_id}.")
    return found


def insert_network(session: Session, network: Network) -> None:
    """Add the network on the lowest free VNI (another request taking it meanwhile: the next)."""
    for _ in range(20):
        network.vni = next_vni(session)
        try:
            with session.begin_nested():
                session.add(network)
                session.flush()
            return
        except IntegrityError:
            session.expunge(network)
            if session.scalar(
                select(Network.id).where(
                    Network.project_id == network.project_id, Network.name == network.name
                )
            ):
                raise Conflict(f"network {network.name} already exists in the project") from None
    raise Conflict("could not allocate a VNI: too many concurrent creates, try again")


class NetworkService:
    def __init__(self, db: Database, operations: Operations) -> None:
        self._db = db
        self._operations = operations

    def show(self, name_or_id: str, projects: set[str] | None) -> NetworkOut:
        with self._db.session() as session:
            return to_out(session, find(session, name_or_id, projects))

    def list(self, projects: set[str] | None) -> list[NetworkOut]:
        with self._db.session() as session:
            query = select(Network).order_by(Network.project_id, Network.name)
            query = seen_by(query, Network.project_id, projects)
            return outs(session, list(session.scalars(query)))

    def create(
        self, spec: NetworkIn, project_id: str, projects: set[str] | None, key: str | None
    ) -> Operation:
        """Accept a create; returns its operation (its ``resource_id`` is the network's)."""
        network_of(spec.cidr)

        def write(session: Session, operation_id: str) -> tuple[str, str]:
            sites = _chosen_sites(session, spec.sites, projects)
            network = Network(
                name=spec.name,
                project_id=project_id,
                cidr=spec.cidr,
                status="BUILD",
                task_operation_id=operation_id,
            )
            insert_network(session, network)
            for site in sites:
                session.add(
                    NetworkSegment(network_id=network.id, site_id=site.id, status="pending")
                )
            return "network", network.id

        return self._operations.accept(
            kind="network.create",
            project_id=project_id,
            request=spec.model_dump(),
            write=write,
            idempotency_key=key,
        )

    def act(self, network_id: str, action: str, project_id: str, key: str | None) -> Operation:
        """Accept sync or delete; a network still holding ports cannot be deleted (409)."""
        check = _deletable(network_id) if action == "delete" else None
        return self._operations.act(NETWORKS, network_id, action, project_id, key, check)


def _deletable(network_id: str) -> Callable[[Session], None]:
    """409 unless no port is on the network and no router joins it."""

    def check(session: Session) -> None:
        ports = session.scalar(
            select(func.count())
            .select_from(NetworkPort)
            .where(NetworkPort.network_id == network_id)
        )
        if ports:
            raise Conflict(
                f"network {network_id} still holds {ports} ports: delete its servers first"
            )
        joined = session.scalar(
            select(RouterNetwork.router_id).where(RouterNetwork.network_id == network_id)
        )
        if joined is not None:
            raise Conflict(f"router {joined} joins network {network_id}: delete it first")

    return check
