"""The worker side of servers: one handler per action, each a short list of idempotent steps.

A server at a site carries Cascade's id in its metadata (``cascade_id``); creation looks for
it first, so a step re-run after a crash finds the server it already made instead of making
a second one. Stop and start look at the status first; a reboot re-run after a crash checks
whether the site saw the first attempt (the server changed since that attempt began).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from openstack.connection import Connection
from sqlalchemy import select, update

from cascade.compute.servers import ServerService
from cascade.db.models import Server, Site
from cascade.engine.context import EngineContext, context
from cascade.engine.convergence import checker, previous_pass_start, repair
from cascade.engine.workflows import Job, StepFailed, StepRun, handler, step, step_function
from cascade.errors import present
from cascade.network.port_steps import follow_everywhere
from cascade.sites import lookup
from cascade.sites.driver import SiteDriver
from cascade.sites.registry import SiteRemoved
from cascade.sites.waits import until_gone

TAG = "cascade_id"
STABLE = ("ACTIVE", "SHUTOFF", "ERROR")


def _server(server_id: str) -> tuple[Server, SiteDriver]:
    engine = context()
    with engine.db.session() as session:
        server = present(session.get(Server, server_id), f"server {server_id}")
    return server, engine.driver(server.site_id)


def _find_at_site(driver: SiteDriver, server: Server) -> Any:
    def look(c: Connection) -> Any:
        if server.site_server_id:
            found = c.compute.find_server(server.site_server_id, ignore_missing=True)
            if found is not None:
                return found
        candidates = c.compute.servers(details=True, name=server.name)
        return next((s for s in candidates if (s.metadata or {}).get(TAG) == server.id), None)

    return driver.call(f"look up server {server.id}", look)


def _record_site_id(server_id: str, site_server_id: str | None) -> None:
    with context().db.session() as session:
        server = session.get(Server, server_id)
        if server is not None:
            server.site_server_id = site_server_id
            server.error = None


def block_device_mapping(c: Connection, server: Server) -> list[dict[str, Any]]:
    """Nova's block device mapping (v2) of the server's ``block_devices``: a new volume made
    from its image (deleted with the server), or a volume of the site (kept)."""
    mapping = []
    for device in server.block_devices or []:
        boot_index = device.get("boot_index")
        entry: dict[str, Any] = {
            "destination_type": "volume",
            "boot_index": -1 if boot_index is None else boot_index,
        }
        if device["source"] == "image":
            image = lookup.image(c, server.image)
            entry |= {"source_type": "image", "uuid": image.id, "volume_size": device["size_gb"]}
            entry["delete_on_termination"] = True
        else:
            entry |= {"source_type": "volume", "uuid": device["volume"]}
            entry["delete_on_termination"] = False
        mapping.append(entry)
    return mapping


@step_function("server.ensure")
def ensure_server(_run: StepRun, server_id: str, site_port_id: str | None = None) -> str:
    """The server at its site, on its site network, or plugged into the port Cascade made."""
    server, driver = _server(server_id)
    found = _find_at_site(driver, server)
    if found is None:

        def create(c: Connection) -> Any:
            flavor = lookup.flavor(c, server.flavor)
            boot: dict[str, Any] = {}
            if server.block_devices:
                boot["block_device_mapping"] = block_device_mapping(c, server)
            if not any(d.get("boot_index") == 0 for d in server.block_devices or []):
                boot["image_id"] = lookup.image(c, server.image).id
            networks: Any = "none"
            if site_port_id is not None:
                networks = [{"port": site_port_id}]
            elif server.network:
                network = lookup.network(c, server.network)
                networks = [{"uuid": network.id}]
            return c.compute.create_server(
                name=server.name,
                flavor_id=flavor.id,
                networks=networks,
                **boot,
                metadata={TAG: server.id},
            )

        found = driver.call(f"create server {server.name}", create)
    _record_site_id(server_id, found.id)
    return str(found.id)


@step_function("server.wait")
def wait_for(_run: StepRun, server_id: str, status: str) -> str:
    server, driver = _server(server_id)
    site_id = present(server.site_server_id, f"the site's id of server {server_id}")
    return str(driver.wait_for_server(site_id, status=status).status)


@step_function("server.power")
def power(run: StepRun, server_id: str, verb: str) -> None:
    server, driver = _server(server_id)
    site_id = present(server.site_server_id, f"the site's id of server {server_id}")
    current = driver.call(f"show server {site_id}", lambda c: c.compute.get_server(site_id))
    if _already_done(run, verb, current):
        return
    calls = {
        "reboot": lambda c: c.compute.reboot_server(site_id, "SOFT"),
        "stop": lambda c: c.compute.stop_server(site_id),
        "start": lambda c: c.compute.start_server(site_id),
    }
    driver.call(f"{verb} server {site_id}", calls[verb])


def _already_done(run: StepRun, verb: str, current: Any) -> bool:
    if verb == "stop":
        return bool(current.status == "SHUTOFF")
    if verb == "start":
        return bool(current.status == "ACTIVE")
    if current.status in ("REBOOT", "HARD_REBOOT"):
        return True
    if run.attempt == 1 or not current.updated_at:
        return False
    changed = datetime.fromisoformat(str(current.updated_at).replace("Z", "+00:00"))
    return changed >= run.first_started_at.replace(microsecond=0)


@step_function("server.remove")
def remove_server(_run: StepRun, server_id: str) -> None:
    try:
        server, driver = _server(server_id)
    except SiteRemoved:
        return  # its site was forced out of Cascade: deleting only forgets the server
    found = _find_at_site(driver, server)
    if found is None:
        return
    driver.call(f"delete server {found.id}", lambda c: c.compute.delete_server(found.id))
    driver.call(
        f"wait for server {found.id} to go",
        lambda c: until_gone(lambda: c.compute.get_server(found.id)),
    )
    _record_site_id(server_id, None)


def _site_name(job: Job) -> str:
    engine = context()
    with engine.db.session() as session:
        server = session.get(Server, job.resource_id)
        site = session.get(Site, server.site_id) if server else None
        return site.name if site else "unknown"


@handler("server.create")
@handler("server.recreate")
def create(job: Job) -> dict[str, Any]:
    """Create the server; on a Cascade network, its port first, and once the site has bound
    it, its remote ports at the network's other sites (a site failing there does not fail
    the server: the result names it and the convergence pass makes the port there later)."""
    site = _site_name(job)
    port_id = step(job, "find its port", None, "port.of_server", job.resource_id)
    site_port_id = None
    if port_id is not None:
        site_port_id = step(job, f"create port at {site}", site, "port.ensure", port_id)
    site_server_id = step(
        job, f"create at {site}", site, "server.ensure", job.resource_id, site_port_id
    )
    step(job, f"wait for ACTIVE at {site}", site, "server.wait", job.resource_id, "ACTIVE")
    result: dict[str, Any] = {"site": site, "site_server_id": site_server_id}
    if port_id is not None:
        result["vtep"] = step(job, f"locate port at {site}", site, "port.locate", port_id)
        failed = follow_everywhere(job, port_id, "create", "port.remote")
        result |= {"remote_ports_failed": failed} if failed else {}
    return result


def _power_handler(verb: str, final: str) -> None:
    @handler(f"server.{verb}")
    def run(job: Job) -> dict[str, Any]:
        site = _site_name(job)
        step(job, f"{verb} at {site}", site, "server.power", job.resource_id, verb)
        step(job, f"wait for {final} at {site}", site, "server.wait", job.resource_id, final)
        return {"site": site}


_power_handler("reboot", "ACTIVE")
_power_handler("stop", "SHUTOFF")
_power_handler("start", "ACTIVE")


@handler("server.delete")
def delete(job: Job) -> dict[str, Any]:
    """Delete the server; on a Cascade network, its remote ports first (every other site's
    hosts forget it), then its port, whose address is given back."""
    site = _site_name(job)
    port_id = step(job, "find its port", None, "port.of_server", job.resource_id)
    if port_id is not None:
        failed = follow_everywhere(job, port_id, "delete", "port.unremote")
        if failed:
            detail = "; ".join(f"{name}: {error}" for name, error in sorted(failed.items()))
            raise StepFailed(f"remote ports could not be removed: {detail}")
    step(job, f"delete at {site}", site, "server.remove", job.resource_id)
    if port_id is not None:
        step(job, f"delete port at {site}", site, "port.remove", port_id)
    return {"site": site}


@checker
def check_servers(engine: EngineContext, site: Site) -> tuple[int, list[dict[str, Any]]]:
    """Compare the site's servers with Cascade's: mark the missing (and recreate them, by
    policy), take up status changed at the site, report servers Cascade does not know. Only
    what existed is repaired: a server whose create never reached the site is left in ERROR."""
    at_site = engine.driver(site.id).call(
        "list servers", lambda c: list(c.compute.servers(details=True))
    )
    tagged = {s.metadata[TAG]: s for s in at_site if (s.metadata or {}).get(TAG)}
    with engine.db.session() as session:
        wanted = session.scalars(select(Server).where(Server.site_id == site.id)).all()
    since = previous_pass_start(engine.db)
    repairs = [
        repair("server", server.id, site.name, drift, action)
        for server in wanted
        if server.task_operation_id is None
        for drift, action in _converge(engine, server, tagged.get(server.id), since)
    ]
    known = {server.id for server in wanted}
    repairs += [
        repair(
            "server",
            cascade_id,
            site.name,
            f"site server {found.id} carries a Cascade id that no server of this site has",
            "reported",
        )
        for cascade_id, found in tagged.items()
        if cascade_id not in known
    ]
    return len(wanted), repairs


def _converge(
    engine: EngineContext, server: Server, found: Any, since: datetime | None
) -> list[tuple[str, str]]:
    if found is None and server.site_server_id is None:
        # Never reached its site (its create failed before the site made it): it stays ERROR
        # with that failure as its error, reported by the first pass after it failed only;
        # there is nothing at the site to repair.
        if since is not None and server.updated_at <= since:
            return []
        reason = server.error or "its create failed"
        return [(f"server never reached the site: {reason}", "none: left in ERROR")]
    if found is None:
        if server.status == "MISSING" or not _set_status(engine, server, "MISSING"):
            return []
        drift = f"server {server.site_server_id} is gone from the site"
        if engine.settings.convergence_policy == "report":
            return [(drift, "marked MISSING")]
        operation = ServerService(engine.db, engine.services.operations).act(
            server.id, "recreate", server.project_id, None
        )
        return [(drift, f"recreating: operation {operation.id}")]
    changed = found.status in STABLE and found.status != server.status
    if changed and _set_status(engine, server, found.status):
        return [(f"status {server.status} at Cascade, {found.status} at the site", "took up")]
    return []


def _set_status(engine: EngineContext, server: Server, status: str) -> bool:
    """Change a server's status unless an operation took it meanwhile."""
    with engine.db.session() as session:
        changed = session.execute(
            update(Server)
            .where(
                Server.id == server.id,
                Server.status == server.status,
                Server.task_operation_id.is_(None),
            )
            .values(status=status)
        )
        return bool(changed.rowcount == 1)  # type: ignore[attr-defined]
