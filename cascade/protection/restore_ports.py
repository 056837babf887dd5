"""Restores onto Cascade networks (networks that span sites), the records and checks: what a
checkpoint records of its servers' ports (network, address, MAC), and, when a restore is
accepted, the port each restored server will get and the service IP it may move.

A server recorded on a Cascade network keeps its address there: its port (the row that
holds the address in Cascade's allocation) moves to the restored server, so the MAC, derived
from the network's VNI and the address, is the same too. Mapped to another Cascade network,
it asks for the same address there. A server on a site's network whose mapping names a
Cascade network gets a new port on it. The target must be among the network's sites (its
segment present there): otherwise a 400 naming both, before anything starts.

May import cascade.network (networks, ports, addresses), cascade.db, cascade.errors.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cascade.db.models import Server, Site
from cascade.db.network_models import Network, NetworkPort, ServiceIP
from cascade.errors import BadRequest, Conflict, NotFound
from cascade.identity.policy import sees
from cascade.network.addresses import free_address, mac_for
from cascade.network.networks import find
from cascade.network.ports import spanned_sites
from cascade.protection.schemas import MappingIn


def recorded_ports(session: Session, server_ids: list[str]) -> dict[str, dict[str, str]]:
    """Per server its port on a Cascade network, as a checkpoint records it."""
    rows = session.execute(
        select(NetworkPort, Network.name)
        .join(Network, Network.id == NetworkPort.network_id)
        .where(NetworkPort.server_id.in_(server_ids))
    ).all()
    return {
        str(port.server_id): {
            "port": port.id,
            "network_id": port.network_id,
            "network": name,
            "ip": port.ip,
            "mac": port.mac,
        }
        for port, name in rows
    }


def _cascade_network(session: Session, name: str, projects: set[str] | None) -> Network | None:
    try:
        return find(session, name, projects)
    except NotFound:
        return None


def _network_for(
    session: Session,
    server: Server,
    recorded: dict[str, str] | None,
    mapping: MappingIn,
    projects: set[str] | None,
) -> tuple[Network, str | None] | None:
    """The Cascade network the restored server's port goes on and the address it asks for
    (None: the lowest free); None when it goes on a site's network."""
    if recorded is None:
        wanted = mapping.networks.get(server.network) if server.network else None
        network = _cascade_network(session, wanted, projects) if wanted else None
        return (network, None) if network is not None else None
    wanted = mapping.networks.get(recorded["network"], mapping.networks.get(recorded["network_id"]))
    if wanted is None:
        network = session.get(Network, recorded["network_id"])
        if network is None:
            raise BadRequest(
                f"network {recorded['network']} of server {server.name} no longer exists: map "
                "it to a Cascade network that spans the target"
            )
        return network, recorded["ip"]
    network = _cascade_network(session, wanted, projects)
    if network is None:
        raise BadRequest(
            f"server {server.name} was on Cascade network {recorded['network']}: map it to a "
            f"Cascade network, not {wanted!r}"
        )
    return network, recorded["ip"]


def _port_entry(
    session: Session, server: Server, network: Network, ip: str | None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"network_id": network.id, "network": network.name, "ip": ip}
    entry |= {"port": None, "mac": None}
    if ip is None:
        return entry
    holder = session.scalar(
        select(NetworkPort).where(NetworkPort.network_id == network.id, NetworkPort.ip == ip)
    )
    if holder is None:
        free_address(session, network, ip)  # in the CIDR, not a service IP's
        return entry | {"mac": mac_for(network.vni, ip)}
    if holder.server_id != server.id:
        raise Conflict(
            f"address {ip} of network {network.name} is held by server {holder.server_id} "
            f"now, not by {server.name}: delete that server first (or restore elsewhere)"
        )
    return entry | {"port": holder.id, "mac": holder.mac}


def plan_ports(
    session: Session,
    checkpoint_ports: dict[str, Any],
    servers: list[Server],
    mapping: MappingIn,
    target: Site,
    projects: set[str] | None,
) -> dict[str, dict[str, Any]]:
    """Per source server on (or mapped to) a Cascade network, the port its restored server
    gets at ``target``: 400 if the network does not span it, 409 if the address is taken."""
    ports = {}
    for server in servers:
        chosen = _network_for(session, server, checkpoint_ports.get(server.id), mapping, projects)
        if chosen is None:
            continue
        network, ip = chosen
        spans = spanned_sites(session, network)
        if target.id not in {site.id for site in spans}:
            where = ", ".join(site.name for site in spans) or "no site yet"
            raise BadRequest(
                f"network {network.name} does not span site {target.name} (it spans {where}): "
                "restore at one of its sites, or map it to a network there"
            )
        ports[server.id] = _port_entry(session, server, network, ip)
    return ports


def choose_service_ip(
    session: Session,
    sip_id: str,
    to: str | None,
    ports: dict[str, dict[str, Any]],
    servers: list[Server],
    projects: set[str] | None,
) -> dict[str, Any]:
    """The service IP the restore moves once its servers run, and the source server whose
    restored server takes it (``to``, id or name; unset: its holder's, if one of them)."""
    sip = session.get(ServiceIP, sip_id)
    if sip is None or not sees(projects, sip.project_id):
        raise BadRequest(f"Unknown service IP {sip_id!r}.")
    members = {server.id: server for server in servers}
    if to is None:
        holder = session.get_one(NetworkPort, sip.holder_port_id).server_id
        if holder not in members:
            raise BadRequest(
                f"service IP {sip.ip} is held by server {holder}, not a server of the plan: "
                "name the server whose restored server takes it (service_ip_to)"
            )
        source = members[str(holder)]
    else:
        found = [s for s in servers if to in (s.id, s.name)]
        if len(found) != 1:
            raise BadRequest(f"service_ip_to {to!r} names no single server of the plan")
        source = found[0]
    entry = ports.get(source.id)
    if entry is None or entry["network_id"] != sip.network_id:
        network = session.get_one(Network, sip.network_id).name
        raise BadRequest(
            f"server {source.name} is restored with no port on network {network}, the network "
            f"of service IP {sip.ip}"
        )
    return {"id": sip.id, "address": sip.ip, "to": source.id, "status": "pending"}
