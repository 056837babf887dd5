"""Service IPs, API side: an address of a network held by one server on it at a time, moved
to another by one operation. The holder is desired state, written when a create or move is
accepted; the operation makes every site of the network say so (``service_ip_steps``).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.models import Operation, Site
from cascade.db.network_models import Network, NetworkPort, ServiceIP
from cascade.engine.operations import Operations
from cascade.engine.states import StateMachine, declare, transition
from cascade.errors import BadRequest
from cascade.identity.policy import seen, seen_by
from cascade.network.addresses import free_address
from cascade.network.networks import find as find_network
from cascade.network.schemas import ServiceIPIn, ServiceIPOut

SERVICE_IPS = declare(
    StateMachine(
        "service_ip",
        ServiceIP,
        {
            "create": transition((), "BUILD", "ACTIVE"),
            "move": transition(("ACTIVE", "ERROR"), "MOVING", "ACTIVE"),
            "sync": transition(("ACTIVE", "ERROR"), "SYNCING", "ACTIVE"),
            "delete": transition(("ACTIVE", "ERROR"), "DELETING", None),
        },
    )
)


def _port_of(session: Session, network: Network, server_id: str) -> NetworkPort:
    port = session.scalar(
        select(NetworkPort).where(
            NetworkPort.network_id == network.id, NetworkPort.server_id == server_id
        )
    )
    if port is None:
        raise BadRequest(f"server {server_id} has no port on network {network.name}")
    return port


def to_out(session: Session, sip: ServiceIP) -> ServiceIPOut:
    return outs(session, [sip])[0]


def outs(session: Session, sips: list[ServiceIP]) -> list[ServiceIPOut]:
    """The service IPs as shown, their holders read in one query however many there are."""
    holders = {
        port.id: (port, site)
        for port, site in session.execute(
            select(NetworkPort, Site.name)
            .join(Site, Site.id == NetworkPort.site_id)
            .where(NetworkPort.id.in_([sip.holder_port_id for sip in sips]))
        )
    }
    return [_out(sip, *holders[sip.holder_port_id]) for sip in sips]


def _out(sip: ServiceIP, port: NetworkPort, site: str) -> ServiceIPOut:
    return ServiceIPOut(
        id=sip.id,
        project_id=sip.project_id,
        network_id=sip.network_id,
        address=sip.ip,
        holder=port.server_id,
        holder_site=site,
        status=sip.status,
        task=sip.task_operation_id,
        error=sip.error,
        moved_at=sip.moved_at,
        switchover_s=sip.switchover_s,
        created_at=sip.created_at,
    )


def find(session: Session, sip_id: str, projects: set[str] | None) -> ServiceIP:
    return seen(session, ServiceIP, sip_id, projects, "service IP")


class ServiceIPService:
    def __init__(self, db: Database, operations: Operations) -> None:
        self._db = db
        self._operations = operations

    def show(self, sip_id: str, projects: set[str] | None) -> ServiceIPOut:
        with self._db.session() as session:
            return to_out(session, find(session, sip_id, projects))

    def list(self, projects: set[str] | None) -> list[ServiceIPOut]:
        with self._db.session() as session:
            query = select(ServiceIP).order_by(ServiceIP.created_at, ServiceIP.id)
            query = seen_by(query, ServiceIP.project_id, projects)
            return outs(session, list(session.scalars(query)))

    def create(
        self, spec: ServiceIPIn, project_id: str, projects: set[str] | None, key: str | None
    ) -> Operation:
        """Accept a create: the address taken on the network, held by ``spec.holder``; returns
        its operation (its ``resource_id`` is the service IP's)."""

        def write(session: Session, operation_id: str) -> tuple[str, str]:
            network = find_network(session, spec.network, projects)
            holder = _port_of(session, network, spec.holder)
            sip = ServiceIP(
                project_id=project_id,
                network_id=network.id,
                ip=free_address(session, network, spec.address),
                holder_port_id=holder.id,
                status="BUILD",
                task_operation_id=operation_id,
            )
            session.add(sip)
            session.flush()
            return "service_ip", sip.id

        return self._operations.accept(
            kind="service_ip.create",
            project_id=project_id,
            request=spec.model_dump(),
            write=write,
            idempotency_key=key,
        )

    def move(
        self, sip_id: str, to: str, project_id: str, projects: set[str] | None, key: str | None
    ) -> Operation:
        """Accept a move to server ``to``, which must have a port on the same network."""

        def write(session: Session, operation_id: str) -> tuple[str, str]:
            sip = find(session, sip_id, projects)
            network = find_network(session, sip.network_id, projects)
            port = _port_of(session, network, to)
            if port.id == sip.holder_port_id:
                raise BadRequest(f"server {to} already holds {sip.ip}")
            SERVICE_IPS.begin(session, sip_id, "move", operation_id)
            sip.holder_port_id = port.id
            return "service_ip", sip_id

        return self._operations.accept(
            kind="service_ip.move",
            project_id=project_id,
            request={"service_ip": sip_id, "to": to},
            write=write,
            idempotency_key=key,
        )

    def follow(self, sip_id: str, project_id: str, key: str | None) -> Operation:
        """Accept a move that keeps the holder's port: the port itself moved to another
        site (a restore gave it to the server restoring its holder), so every site places
        the address again, as for a move to another server."""
        return self._operations.act(SERVICE_IPS, sip_id, "move", project_id, key)

    def act(self, sip_id: str, action: str, project_id: str, key: str | None) -> Operation:
        """Accept sync or delete."""
        return self._operations.act(SERVICE_IPS, sip_id, action, project_id, key)
