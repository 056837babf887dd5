"""Server ports on networks that span sites, worker side: the port at the server's site with
Cascade's address and MAC, where the site bound it (its host's tunnel endpoint, read from the
site's network agents as Neutron reports them: ``configurations.tunneling_ip``), and its
remote ports at the network's other sites.

A remote port is a port at another site carrying the real port's address and MAC, with
``binding:profile`` ``{"tunnel_ip": VTEP}`` and device owner ``compute:shadow`` (the
convention of Neutron's cross-backend proposal, as Tricircle used it): that site's L2
population programs its hosts' FDB and ARP tables toward the VTEP. Ports are Cascade's by
name (``cascade-{port id}`` and ``cascade-remote-{port id}``); every step looks before it
makes, so a re-run after a crash finds what it made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openstack.connection import Connection
from sqlalchemy import delete, select, update

from cascade.db.network_models import NetworkPort, NetworkSegment, RemotePort
from cascade.engine.context import context
from cascade.engine.workflows import Job, StepRun, at_sites, step, step_function
from cascade.errors import Conflict, present
from cascade.network.groups import group_name
from cascade.sites.driver import SiteCallFailed
from cascade.sites.named import sites_named_by

SHADOW_OWNER = "compute:shadow"


def port_name(port_id: str) -> str:
    return f"cascade-{port_id}"


def remote_name(port_id: str) -> str:
    return f"cascade-remote-{port_id}"


def _port(port_id: str) -> NetworkPort:
    return context().row(NetworkPort, port_id, f"port {port_id}")


@dataclass(frozen=True)
class Segment:
    """A network's network and subnet at one site."""

    network_id: str
    subnet_id: str


def _segment(network_id: str, site_id: str) -> Segment:
    with context().db.session() as session:
        row = session.get(NetworkSegment, (network_id, site_id))
        if row is None or row.site_network_id is None or row.site_subnet_id is None:
            raise Conflict(f"network {network_id} is not present at site {site_id}")
        return Segment(row.site_network_id, row.site_subnet_id)


def _named(c: Connection, network_id: str, name: str) -> Any:
    return next(iter(c.network.ports(network_id=network_id, name=name)), None)


def _update_port(port_id: str, **values: Any) -> None:
    with context().db.session() as session:
        session.execute(update(NetworkPort).where(NetworkPort.id == port_id).values(**values))


@step_function("port.ensure")
def ensure_port(_run: StepRun, port_id: str) -> str:
    """The server's port at its site; returns its id there."""
    port = _port(port_id)
    segment = _segment(port.network_id, port.site_id)

    def ensure(c: Connection) -> str:
        found = _named(c, segment.network_id, port_name(port.id))
        if found is None:
            group = next(iter(c.network.security_groups(name=group_name(port.network_id))), None)
            if group is None:
                raise Conflict(f"network {port.network_id}'s security group is not at the site")
            found = c.network.create_port(
                network_id=segment.network_id,
                name=port_name(port.id),
                mac_address=port.mac,
                fixed_ips=[{"subnet_id": segment.subnet_id, "ip_address": port.ip}],
                security_groups=[group.id],
            )
        return str(found.id)

    site_port_id = context().driver(port.site_id).call(f"create port {port.ip}", ensure)
    _update_port(port_id, site_port_id=site_port_id)
    return site_port_id


def vtep_of(c: Connection, host: str) -> str:
    """The tunnel endpoint of a site's host, as its network agent reports it."""
    for agent in c.network.agents(host=host):
        tunneling_ip = (agent.configuration or {}).get("tunneling_ip")
        if tunneling_ip:
            return str(tunneling_ip)
    raise Conflict(f"no network agent of host {host} reports a tunneling_ip")


@step_function("port.locate")
def locate_port(_run: StepRun, port_id: str) -> str:
    """Where the site bound the port: records its host and VTEP, returns the VTEP."""
    port = _port(port_id)
    site_port_id = present(port.site_port_id, f"the site's id of port {port_id}")

    def locate(c: Connection) -> tuple[str, str]:
        host = c.network.get_port(site_port_id).binding_host_id
        if not host:
            raise Conflict(f"port {site_port_id} is not bound to a host")
        return str(host), vtep_of(c, str(host))

    host, vtep = context().driver(port.site_id).call(f"locate port {port.ip}", locate)
    record_location(port_id, host, vtep)
    return vtep


def record_location(port_id: str, host: str, vtep: str) -> None:
    _update_port(port_id, host=host, vtep=vtep)


def ports_at(network_id: str, site_id: str) -> list[NetworkPort]:
    """The network's ports held at the site (made there, so with a site port id)."""
    with context().db.session() as session:
        return list(
            session.scalars(
                select(NetworkPort).where(
                    NetworkPort.network_id == network_id,
                    NetworkPort.site_id == site_id,
                    NetworkPort.site_port_id.is_not(None),
                )
            )
        )


def moved(c: Connection, segment: Segment, ports: list[NetworkPort]) -> list[tuple[str, str, str]]:
    """(port id, host, VTEP) of the ports the site now binds to another host than recorded."""
    bound = {p.id: p.binding_host_id for p in c.network.ports(network_id=segment.network_id)}
    found = []
    for port in ports:
        host = bound.get(port.site_port_id or "")
        if host and host != port.host:
            found.append((port.id, str(host), vtep_of(c, str(host))))
    return found


def _set_remote(port_id: str, site_id: str, **values: Any) -> None:
    with context().db.session() as session:
        row = session.get(RemotePort, (port_id, site_id))
        if row is None:
            session.add(RemotePort(port_id=port_id, site_id=site_id, **values))
        else:
            for name, value in values.items():
                setattr(row, name, value)


def ensure_remote_at(c: Connection, port: NetworkPort, segment: Segment) -> str:
    """Make (or correct) the port's remote port at a site; returns its id there. A port of
    its own name there is stale (the port moved away from that site, as a restore at another
    site moves it while this one is lost): it goes first, so one address has one port."""
    stale = _named(c, segment.network_id, port_name(port.id))
    if stale is not None:
        c.network.delete_port(stale.id, ignore_missing=True)
    profile = {"tunnel_ip": port.vtep}
    found = _named(c, segment.network_id, remote_name(port.id))
    if found is not None and (found.mac_address != port.mac or found.binding_profile != profile):
        if found.mac_address == port.mac:
            return str(c.network.update_port(found.id, binding_profile=profile).id)
        c.network.delete_port(found.id, ignore_missing=True)
        found = None
    if found is None:
        found = c.network.create_port(
            network_id=segment.network_id,
            name=remote_name(port.id),
            mac_address=port.mac,
            fixed_ips=[{"subnet_id": segment.subnet_id, "ip_address": port.ip}],
            device_owner=SHADOW_OWNER,
            binding_profile=profile,
            security_groups=[],  # filtering is the VM's own site's; pairs need port security
        )
    return str(found.id)


@step_function("port.remote")
def ensure_remote(_run: StepRun, port_id: str, site_id: str) -> str:
    port = _port(port_id)
    segment = _segment(port.network_id, site_id)
    what = f"create remote port {port.ip} (VTEP {port.vtep})"
    try:
        remote = context().driver(site_id).call(what, lambda c: ensure_remote_at(c, port, segment))
    except SiteCallFailed as failure:
        _set_remote(port_id, site_id, status="error", error=failure.message, vtep=None)
        raise
    _set_remote(port_id, site_id, status="present", error=None, site_port_id=remote, vtep=port.vtep)
    return remote


@step_function("port.unremote")
def remove_remote(_run: StepRun, port_id: str, site_id: str) -> None:
    port = _port(port_id)
    with context().db.session() as session:
        row = session.get(NetworkSegment, (port.network_id, site_id))
    site_network_id = row.site_network_id if row is not None else None
    if site_network_id is not None:

        def remove(c: Connection) -> None:
            found = _named(c, site_network_id, remote_name(port.id))
            if found is not None:
                c.network.delete_port(found.id, ignore_missing=True)

        context().driver(site_id).call(f"delete remote port {port.ip}", remove)
    with context().db.session() as session:
        session.execute(
            delete(RemotePort).where(RemotePort.port_id == port_id, RemotePort.site_id == site_id)
        )


@step_function("port.remove")
def remove_port(_run: StepRun, port_id: str) -> None:
    """Delete the port at its site and give its address back."""
    port = _port(port_id)
    site_port_id = port.site_port_id
    if site_port_id is not None:
        context().driver(port.site_id).call(
            f"delete port {port.ip}",
            lambda c: c.network.delete_port(site_port_id, ignore_missing=True),
        )
    with context().db.session() as session:
        session.execute(delete(NetworkPort).where(NetworkPort.id == port_id))


@step_function("port.other_sites")
def other_sites(_run: StepRun, port_id: str) -> list[tuple[str, str]]:
    """(site id, site name) of the port's network's present segments other than its own."""
    port = _port(port_id)
    with context().db.session() as session:
        return sites_named_by(
            session,
            NetworkSegment.site_id,
            NetworkSegment.network_id == port.network_id,
            NetworkSegment.site_id != port.site_id,
            NetworkSegment.status == "present",
        )


def follow_everywhere(job: Job, port_id: str, verb: str, function_name: str) -> dict[str, str]:
    """Run a remote-port step at each other site of the port's network, in parallel;
    returns the sites that failed and why (the port's own site is not affected by them)."""
    sites = step(job, "find the network's other sites", None, "port.other_sites", port_id)
    outcomes = at_sites(job, sites, f"{verb} remote port", function_name, port_id)
    return {site: outcome["error"] for site, outcome in outcomes.items() if not outcome["ok"]}


@step_function("port.of_server")
def port_of_server(_run: StepRun, server_id: str) -> str | None:
    """The id of the server's port on a Cascade network, if it has one."""
    with context().db.session() as session:
        return session.scalar(select(NetworkPort.id).where(NetworkPort.server_id == server_id))


def remote_ports_wanted(network_id: str, site_id: str) -> list[NetworkPort]:
    """The network's ports held at other sites whose VTEP is known: each needs a remote port
    at ``site_id``."""
    with context().db.session() as session:
        return list(
            session.scalars(
                select(NetworkPort).where(
                    NetworkPort.network_id == network_id,
                    NetworkPort.site_id != site_id,
                    NetworkPort.vtep.is_not(None),
                )
            )
        )


def remote_drift(c: Connection, segment: Segment, wanted: list[NetworkPort]) -> list[str]:
    """What differs between the remote ports a site has on the segment and ``wanted``."""
    have = {
        p.name: p
        for p in c.network.ports(network_id=segment.network_id, device_owner=SHADOW_OWNER)
        if p.name.startswith("cascade-remote-")
    }
    drift = []
    for port in wanted:
        found = have.pop(remote_name(port.id), None)
        if found is None:
            drift.append(f"remote port {port.ip} is missing")
        elif found.binding_profile != {"tunnel_ip": port.vtep} or found.mac_address != port.mac:
            drift.append(f"remote port {port.ip} points at {found.binding_profile}")
    drift += [f"remote port {p.name} has no port at Cascade" for p in have.values()]
    return drift


def reconcile_remote_ports(c: Connection, segment: Segment, wanted: list[NetworkPort]) -> None:
    """Make the site's remote ports on the segment exactly ``wanted``."""
    names = {remote_name(port.id) for port in wanted}
    for found in c.network.ports(network_id=segment.network_id, device_owner=SHADOW_OWNER):
        if found.name.startswith("cascade-remote-") and found.name not in names:
            c.network.delete_port(found.id, ignore_missing=True)
    for port in wanted:
        ensure_remote_at(c, port, segment)
