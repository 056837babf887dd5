"""Server ports on networks that span sites, API side: where a server on a network may go,
and the address it is given there, in the transaction that accepts the server."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from cascade.db.models import Site
from cascade.db.network_models import Network, NetworkPort, NetworkSegment, ServiceIP
from cascade.errors import BadRequest, Conflict
from cascade.network.addresses import free_address, mac_for
from cascade.network.networks import find


class PortIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    network: str = Field(
        min_length=1, max_length=255, description="A network of /v1/networks (name or id)."
    )
    ip: str | None = Field(
        None, max_length=64, description="An address of its CIDR; unset: the lowest free one."
    )


class PortOut(BaseModel):
    id: str
    network_id: str
    network: str
    ip: str
    mac: str
    site_port_id: str | None = Field(description="The port's id at the server's site.")
    host: str | None = Field(description="The site's host it is bound to, once known.")
    vtep: str | None = Field(description="That host's tunnel endpoint, once known.")


def to_port_out(port: NetworkPort, network_name: str) -> PortOut:
    return PortOut(
        id=port.id,
        network_id=port.network_id,
        network=network_name,
        ip=port.ip,
        mac=port.mac,
        site_port_id=port.site_port_id,
        host=port.host,
        vtep=port.vtep,
    )


def usable_network(session: Session, spec: PortIn, projects: set[str] | None) -> Network:
    """The network, locked against a concurrent delete; 409 while it is being deleted."""
    network = find(session, spec.network, projects)
    session.refresh(network, with_for_update=True)
    if network.status == "DELETING":
        raise Conflict(f"network {network.name} is being deleted")
    return network


def spanned_sites(session: Session, network: Network) -> list[Site]:
    """The sites where the network is present, by name."""
    return list(
        session.scalars(
            select(Site)
            .join(NetworkSegment, NetworkSegment.site_id == Site.id)
            .where(NetworkSegment.network_id == network.id, NetworkSegment.status == "present")
            .order_by(Site.name)
        )
    )


def check_spans(session: Session, network: Network, site: Site) -> None:
    if site.id not in {s.id for s in spanned_sites(session, network)}:
        raise BadRequest(
            f"network {network.name} does not span site {site.name} (or is not present there "
            f"yet): put the server at one of its sites"
        )


def refuse_if_holding(session: Session, server_id: str) -> None:
    """409 when the server holds a service IP: move it (or delete it) first."""
    held = session.scalar(
        select(ServiceIP.ip)
        .join(NetworkPort, NetworkPort.id == ServiceIP.holder_port_id)
        .where(NetworkPort.server_id == server_id)
    )
    if held is not None:
        raise Conflict(
            f"server {server_id} holds service IP {held}: move it to another server first"
        )


def allocate(
    session: Session, network: Network, site: Site, server_id: str | None, ip: str | None
) -> NetworkPort:
    """Give a server (None: a router) an address and its MAC on the network at ``site``."""
    address = free_address(session, network, ip)
    port = NetworkPort(
        network_id=network.id,
        site_id=site.id,
        server_id=server_id,
        ip=address,
        mac=mac_for(network.vni, address),
    )
    session.add(port)
    session.flush()
    return port
