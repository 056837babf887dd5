"""Restores onto Cascade networks, worker side: the restored server's port, the remote ports
that follow it, the service IP moved once every server runs, and a failed restore's ports
given back.

- ``take_port`` (in ``restore.server``'s transaction): the source server's port moves to the
  restored server and to the target site (its address and MAC stay, so no second port ever
  holds the address); or a new port is allocated when the address was not held any more or
  the server goes on another Cascade network. Its old site, site port, host and VTEP are kept
  in the restore's ``ports`` to give it back if the restore fails.
- ``plug``: the target's remote port of a moved port leaves (``port.unremote``: the target
  said the address lived elsewhere), then the port is made there (``port.ensure``); the
  server boots on it, and ``port.locate`` reads its host and VTEP.
- ``restore.remote`` (every other site of the networks, in parallel, and at each site its
  ports in parallel on ``parallel.in_parallel``'s few threads, so that a lost site costs
  about one site call deadline, not one per port): each restored port's remote port points
  at its new VTEP; a site that is lost (the source) fails there and is named in the result:
  the convergence pass makes it right when the site returns, deleting the stale port the
  source site still has (``port_steps.ensure_remote_at``).
- ``restore.service_ip`` and ``restore.service_ip_moved``: the service IP's move, accepted
  as its own ``service_ip.move`` operation (a ``follow`` when the holder's port itself
  moved), waited for and recorded in the restore.
- ``restore.release``: a failed restore's port goes back to its source server and site (the
  port at the target deleted, the remote port there made again) or, when new, is removed.

May import cascade.protection (its thread pool, ``parallel``), cascade.network (ports, port_steps,
service_ips), cascade.engine, cascade.db, cascade.errors, cascade.retry.
"""

from __future__ import annotations

from typing import Any

from openstack.connection import Connection
from sqlalchemy import select
from sqlalchemy.orm import Session

from cascade.db.models import Operation, Server, Site
from cascade.db.network_models import Network, NetworkPort, NetworkSegment, ServiceIP
from cascade.db.protection_models import Restore
from cascade.engine.context import context
from cascade.engine.workflows import Job, StepRun, at_sites, step, step_function
from cascade.errors import CascadeError, Conflict
from cascade.network.port_steps import ensure_remote, port_name, remove_port
from cascade.network.ports import allocate
from cascade.network.service_ips import ServiceIPService
from cascade.protection.parallel import in_parallel
from cascade.retry import Backoff, until_deadline
from cascade.sites.named import sites_named_by

MOVE_POLL = Backoff(first=0.1, cap=1.0)
MOVE_DEADLINE = 300.0  # seconds a restore waits for its service IP's move


def take_port(session: Session, restore: Restore, source_id: str, server: Server) -> str | None:
    """Give the restored ``server`` its port (see the module); the port's id, if it has one."""
    entry = restore.ports.get(source_id)
    if entry is None:
        return None
    if entry["port"] is not None:
        port = session.get(NetworkPort, entry["port"], with_for_update=True)
        if port is None or port.server_id != source_id:
            raise Conflict(
                f"address {entry['ip']} of network {entry['network']} left server {source_id} "
                "since the restore was accepted"
            )
        moved_from = {"site_id": port.site_id, "site_port_id": port.site_port_id}
        entry = entry | {"moved_from": moved_from | {"host": port.host, "vtep": port.vtep}}
        port.server_id, port.site_id = server.id, restore.target_site_id
        port.site_port_id = port.host = port.vtep = None
    else:
        network = session.get_one(Network, entry["network_id"])
        site = session.get_one(Site, restore.target_site_id)
        port = allocate(session, network, site, server.id, entry["ip"])
        entry = entry | {"port": port.id, "ip": port.ip, "mac": port.mac}
    restore.ports = {**restore.ports, source_id: entry | {"server": server.id}}
    return port.id


def plug(job: Job, site: str, site_id: str, port_id: str, moved: bool) -> str:
    """Make the restored server's port at the target; its id there."""
    if moved:
        step(
            job,
            f"remove the remote port {port_id} at {site}",
            site,
            "port.unremote",
            port_id,
            site_id,
        )
    return str(step(job, f"create port {port_id} at {site}", site, "port.ensure", port_id))


@step_function("restore.remote_sites")
def remote_sites(_run: StepRun, restore_id: str) -> list[tuple[str, str]]:
    """(id, name) of the sites other than the target where a restored port's network is."""
    with context().db.session() as session:
        restore = session.get_one(Restore, restore_id)
        networks = {entry["network_id"] for entry in restore.ports.values() if "server" in entry}
        return sites_named_by(
            session,
            NetworkSegment.site_id,
            NetworkSegment.network_id.in_(networks),
            NetworkSegment.site_id != restore.target_site_id,
            NetworkSegment.status == "present",
        )


@step_function("restore.remote")
def point_remote_ports(run: StepRun, restore_id: str, site_id: str) -> list[str]:
    """Each restored port's remote port at the site, pointing at its new VTEP."""
    with context().db.session() as session:
        restore = session.get_one(Restore, restore_id)
        present = set(
            session.scalars(
                select(NetworkSegment.network_id).where(
                    NetworkSegment.site_id == site_id, NetworkSegment.status == "present"
                )
            )
        )
        ports = [
            e["port"]
            for e in restore.ports.values()
            if "server" in e and e["network_id"] in present
        ]

    def point(port_id: str) -> str | None:
        try:
            ensure_remote(run, port_id, site_id)
        except CascadeError as failure:
            return failure.message
        return None

    failed = [message for message in in_parallel(point, ports) if message is not None]
    if failed:
        raise Conflict("; ".join(failed))
    return ports


def follow_ports(job: Job, restore_id: str) -> dict[str, str]:
    """Point the restored ports' remote ports at every other site; the sites that failed."""
    sites = step(job, "find the networks' other sites", None, "restore.remote_sites", restore_id)
    outcomes = at_sites(job, sites, "point the remote ports", "restore.remote", restore_id)
    return {site: outcome["error"] for site, outcome in outcomes.items() if not outcome["ok"]}


def _record_service_ip(restore_id: str, **values: Any) -> dict[str, Any]:
    with context().db.session() as session:
        restore = session.get_one(Restore, restore_id, with_for_update=True)
        restore.service_ip = {**(restore.service_ip or {}), **values}
        return dict(restore.service_ip)


@step_function("restore.service_ip")
def accept_move(_run: StepRun, restore_id: str) -> str:
    """Accept the service IP's move to the restored server (once: a re-run finds the
    operation by its idempotency key, as the holder may have changed since); waits while
    another operation holds the service IP."""
    engine = context()
    key = f"restore-{restore_id}-service-ip"
    with engine.db.session() as session:
        restore = session.get_one(Restore, restore_id)
        wanted = dict(restore.service_ip or {})
        entry = restore.ports[wanted["to"]]
        earlier = session.scalar(
            select(Operation.id).where(
                Operation.project_id == restore.project_id, Operation.idempotency_key == key
            )
        )
        sip = session.get_one(ServiceIP, wanted["id"])
        follows = sip.holder_port_id == entry["port"]
    if earlier is not None:  # accepted by an attempt that did not record it
        _record_service_ip(restore_id, operation=earlier, holder=entry["server"])
        return earlier
    service = ServiceIPService(engine.db, engine.services.operations)

    def accept() -> str:
        if follows:
            return service.follow(wanted["id"], restore.project_id, key).id
        return service.move(wanted["id"], entry["server"], restore.project_id, None, key).id

    operation_id = until_deadline(
        MOVE_POLL, MOVE_DEADLINE, lambda error: isinstance(error, Conflict), accept
    )
    _record_service_ip(restore_id, operation=operation_id, holder=entry["server"])
    return operation_id


class _Running(Conflict):
    """The operation has not finished yet."""


@step_function("restore.service_ip_moved")
def wait_moved(_run: StepRun, restore_id: str, operation_id: str) -> dict[str, Any]:
    """Wait for the service IP's move and record how it went in the restore."""
    engine = context()

    def finished() -> Operation:
        with engine.db.session() as session:
            operation = session.get_one(Operation, operation_id)
            if operation.status not in ("succeeded", "failed"):
                raise _Running(f"operation {operation_id} is {operation.status}")
            return operation

    operation = until_deadline(
        MOVE_POLL, MOVE_DEADLINE, lambda error: isinstance(error, _Running), finished
    )
    result = operation.result or {}
    outcome = {
        "status": "moved" if operation.status == "succeeded" else "failed",
        "holder_site": result.get("holder_site"),
        "switchover_s": result.get("switchover_s"),
        "pending_sites": result.get("pending_sites"),
        "error": operation.error,
    }
    return _record_service_ip(restore_id, **outcome)


def move_service_ip(job: Job, site: str) -> dict[str, Any]:
    """The restore's service IP moved to its restored server (how it went)."""
    operation_id = step(job, "move the service IP", site, "restore.service_ip", job.resource_id)
    return dict(
        step(
            job,
            "wait for the service IP's move",
            site,
            "restore.service_ip_moved",
            job.resource_id,
            operation_id,
        )
    )


def _delete_at_target(c: Connection, site_network_id: str | None, port: NetworkPort) -> None:
    if port.site_port_id is not None:
        c.network.delete_port(port.site_port_id, ignore_missing=True)
    if site_network_id is not None:
        for found in c.network.ports(network_id=site_network_id, name=port_name(port.id)):
            c.network.delete_port(found.id, ignore_missing=True)


@step_function("restore.release")
def release_port(run: StepRun, restore_id: str, source_id: str) -> None:
    """Give a failed restore's port back to its source server (or remove it, if new); its
    restored server is gone from the target already."""
    engine = context()
    with engine.db.session() as session:
        restore = session.get_one(Restore, restore_id)
        entry = restore.ports.get(source_id, {})
        port = session.get(NetworkPort, entry.get("port") or "")
        segment = session.get(NetworkSegment, (entry.get("network_id"), restore.target_site_id))
    if port is None or "server" not in entry or port.server_id != entry["server"]:
        return  # never taken, or given back already
    if "moved_from" not in entry:
        remove_port(run, port.id)
        return
    site_network_id = segment.site_network_id if segment is not None else None
    engine.driver(restore.target_site_id).call(
        f"delete port {port.ip} at the target",
        lambda c: _delete_at_target(c, site_network_id, port),
    )
    old = entry["moved_from"]
    with engine.db.session() as session:
        row = session.get_one(NetworkPort, port.id, with_for_update=True)
        row.server_id, row.site_id = source_id, old["site_id"]
        row.site_port_id, row.host, row.vtep = old["site_port_id"], old["host"], old["vtep"]
    if old["vtep"] is not None and site_network_id is not None:
        ensure_remote(run, port.id, restore.target_site_id)  # the target's remote port again
