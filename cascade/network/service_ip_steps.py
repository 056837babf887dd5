"""Service IPs, worker side: make every site of the network say where the address lives.

At each site, the address is an allowed address pair on exactly one of Cascade's ports of the
network: the holder's own port at the holder's site, the holder's remote port elsewhere (so
that site's L2 population points the address at the holder's host VTEP); every other Cascade
port there loses it. The emulated region's guest takes the address on its interface and
announces it (gratuitous ARP) when its port gains the pair, as a VNF's own IP takeover would.

Create, move and sync apply this at every site in parallel: a move frees the old holder and
takes at the new one at the same moment, and succeeds once the new holder's site has it; a
site that cannot be reached (the old holder's, say) is named in the result and brought in
line by the convergence pass when it returns (``docs/partitions.md``).
"""

from __future__ import annotations

import ipaddress
import time
from datetime import UTC, datetime
from typing import Any

from openstack.connection import Connection
from sqlalchemy import select, update

from cascade.db.models import Site
from cascade.db.network_models import NetworkPort, NetworkSegment, ServiceIP
from cascade.engine.context import EngineContext, context
from cascade.engine.convergence import checker, repair
from cascade.engine.workflows import (
    Job,
    StepFailed,
    StepRun,
    at_sites,
    handler,
    step,
    step_function,
)
from cascade.errors import Conflict, present
from cascade.network.port_steps import port_name, remote_name
from cascade.network.service_ips import ServiceIPService
from cascade.sites.named import sites_named_by


def _holder(sip_id: str) -> tuple[ServiceIP, NetworkPort]:
    with context().db.session() as session:
        sip = present(session.get(ServiceIP, sip_id), f"service IP {sip_id}")
        port = present(session.get(NetworkPort, sip.holder_port_id), f"port {sip.holder_port_id}")
        return sip, port


def _site_network(network_id: str, site_id: str) -> str:
    with context().db.session() as session:
        segment = session.get(NetworkSegment, (network_id, site_id))
    if segment is None or segment.site_network_id is None:
        raise Conflict(f"network {network_id} is not present at site {site_id}")
    return segment.site_network_id


def _cascade_ports(c: Connection, site_network_id: str) -> list[Any]:
    return [p for p in c.network.ports(network_id=site_network_id) if p.name.startswith("cascade-")]


def same_address(pair_address: str, address: str) -> bool:
    """Whether a pair's ``ip_address`` (an address or a prefix, as Neutron allows) is exactly
    ``address``."""
    return ipaddress.ip_network(pair_address, strict=False) == ipaddress.ip_network(address)


def _holds(port: Any, address: str) -> bool:
    return any(
        same_address(pair["ip_address"], address) for pair in port.allowed_address_pairs or []
    )


def _misplaced(ports: list[Any], address: str, target: str | None) -> list[Any]:
    return [p for p in ports if _holds(p, address) != (p.name == target)]


def misplaced(c: Connection, site_network_id: str, address: str, target: str | None) -> list[Any]:
    """Cascade's ports at the site whose pairs disagree with ``target`` (the port name that
    should hold ``address``; None: none should)."""
    return _misplaced(_cascade_ports(c, site_network_id), address, target)


def _apply(c: Connection, site_network_id: str, address: str, target: str | None, mac: str) -> None:
    ports = _cascade_ports(c, site_network_id)
    if target is not None and not any(p.name == target for p in ports):
        raise Conflict(f"the holder's port {target} is not at the site (yet)")
    for port in sorted(_misplaced(ports, address, target), key=lambda p: p.name == target):
        pairs = [  # freed before taken, where both are at this site
            pair
            for pair in port.allowed_address_pairs or []
            if not same_address(pair["ip_address"], address)
        ]
        if port.name == target:
            pairs.append({"ip_address": address, "mac_address": mac})
        c.network.update_port(port.id, allowed_address_pairs=pairs)


def target_at(holder: NetworkPort, site_id: str, deleting: bool) -> str | None:
    if deleting:
        return None
    return port_name(holder.id) if holder.site_id == site_id else remote_name(holder.id)


@step_function("service_ip.apply")
def apply_at(_run: StepRun, sip_id: str, site_id: str, deleting: bool = False) -> float:
    """Make the site agree with the holder; returns when it did (epoch seconds)."""
    sip, holder = _holder(sip_id)
    site_network_id = _site_network(sip.network_id, site_id)
    target = target_at(holder, site_id, deleting)
    context().driver(site_id).call(
        f"place service IP {sip.ip}",
        lambda c: _apply(c, site_network_id, sip.ip, target, holder.mac),
    )
    return time.time()


@step_function("service_ip.sites")
def sites(_run: StepRun, sip_id: str) -> tuple[float, str, list[tuple[str, str]]]:
    """(now, the holder's site id, (id, name) of every present segment's site)."""
    sip, holder = _holder(sip_id)
    with context().db.session() as session:
        present = sites_named_by(
            session,
            NetworkSegment.site_id,
            NetworkSegment.network_id == sip.network_id,
            NetworkSegment.status == "present",
        )
    return time.time(), holder.site_id, present


@step_function("service_ip.moved")
def record_move(_run: StepRun, sip_id: str, switchover_s: float, at: float) -> None:
    with context().db.session() as session:
        session.execute(
            update(ServiceIP)
            .where(ServiceIP.id == sip_id)
            .values(switchover_s=switchover_s, moved_at=datetime.fromtimestamp(at, UTC))
        )


def _everywhere(job: Job, verb: str) -> dict[str, Any]:
    """Apply at every site; fails only if the holder's own site did not take it."""
    started, holder_site, targets = step(
        job, "find the sites", None, "service_ip.sites", job.resource_id
    )
    outcomes = at_sites(job, targets, verb, "service_ip.apply", job.resource_id)
    names = dict(targets)
    own = outcomes.get(names.get(holder_site, ""), {"ok": False, "error": "not present there"})
    if not own["ok"]:
        raise StepFailed(f"the holder's site did not take it: {own['error']}")
    pending = {site: o["error"] for site, o in outcomes.items() if not o["ok"]}
    result: dict[str, Any] = {"holder_site": names[holder_site]}
    if pending:
        result["pending_sites"] = pending
    if job.action == "move":
        switchover = round(own["value"] - started, 3)
        step(
            job,
            "record the switchover",
            None,
            "service_ip.moved",
            job.resource_id,
            switchover,
            own["value"],
        )
        result["switchover_s"] = switchover
    return result


@handler("service_ip.create")
@handler("service_ip.move")
@handler("service_ip.sync")
def place(job: Job) -> dict[str, Any]:
    return _everywhere(job, "place")


@handler("service_ip.delete")
def delete(job: Job) -> dict[str, Any]:
    _started, _holder_site, targets = step(
        job, "find the sites", None, "service_ip.sites", job.resource_id
    )
    outcomes = at_sites(job, targets, "free", "service_ip.free", job.resource_id)
    failed = {site: o["error"] for site, o in outcomes.items() if not o["ok"]}
    if failed:
        raise StepFailed(f"{len(failed)} sites still hold it: {failed}")
    return {"sites": sorted(outcomes)}


@step_function("service_ip.free")
def free_at(run: StepRun, sip_id: str, site_id: str) -> float:
    return float(apply_at(run, sip_id, site_id, True))


def _misplaced_at(
    engine: EngineContext, site: Site, site_network_id: str, address: str, target: str | None
) -> list[Any]:
    return engine.driver(site.id).call(
        f"check service IP {address}", lambda c: misplaced(c, site_network_id, address, target)
    )


@checker
def check_service_ips(engine: EngineContext, site: Site) -> tuple[int, list[dict[str, Any]]]:
    """A site whose ports disagree with a service IP's holder (it was cut off during a move,
    or a pair was changed behind Cascade's back) is brought in line by a sync."""
    with engine.db.session() as session:
        rows = session.execute(
            select(ServiceIP, NetworkPort, NetworkSegment.site_network_id)
            .join(NetworkPort, NetworkPort.id == ServiceIP.holder_port_id)
            .join(NetworkSegment, NetworkSegment.network_id == ServiceIP.network_id)
            .where(
                NetworkSegment.site_id == site.id,
                NetworkSegment.site_network_id.is_not(None),
                ServiceIP.task_operation_id.is_(None),
            )
        ).all()
    repairs = []
    for sip, holder, site_network_id in rows:
        target = target_at(holder, site.id, False)
        wrong = _misplaced_at(engine, site, site_network_id or "", sip.ip, target)
        if not wrong:
            continue
        try:
            operation = ServiceIPService(engine.db, engine.services.operations).act(
                sip.id, "sync", sip.project_id, None
            )
        except Conflict:
            continue
        drift = f"{sip.ip} is on {', '.join(sorted(p.name for p in wrong))}, should be on {target}"
        repairs.append(
            repair("service_ip", sip.id, site.name, drift, f"syncing: operation {operation.id}")
        )
    return len(rows), repairs
