"""Servers: placement, the state machine, and accepting each action as an operation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cascade.compute.schemas import ServerIn, ServerOut
from cascade.db import Database
from cascade.db.models import Operation, Server, Site
from cascade.db.network_models import Network, NetworkPort
from cascade.engine.operations import Operations
from cascade.engine.states import StateMachine, declare, transition
from cascade.errors import BadRequest, NotFound
from cascade.identity.policy import seen_by, sees
from cascade.network.networks import visible_sites
from cascade.network.ports import (
    PortOut,
    allocate,
    check_spans,
    refuse_if_holding,
    spanned_sites,
    to_port_out,
    usable_network,
)

BUSY = ("BUILD", "REBOOT", "STOPPING", "STARTING")
SERVERS = declare(
    StateMachine(
        "server",
        Server,
        {
            "create": transition((), "BUILD", "ACTIVE"),
            "recreate": transition(("MISSING",), "BUILD", "ACTIVE"),
            "reboot": transition(("ACTIVE",), "REBOOT", "ACTIVE"),
            "stop": transition(("ACTIVE",), "STOPPING", "SHUTOFF"),
            "start": transition(("SHUTOFF",), "STARTING", "ACTIVE"),
            # Delete may queue behind a running action; it runs once that one is done.
            "delete": transition(
                ("ACTIVE", "SHUTOFF", "ERROR", "MISSING", *BUSY), "DELETING", None
            ),
        },
    )
)


def boot_volume(size_gb: int | None) -> list[dict[str, Any]] | None:
    """The block devices of a server booting from a new volume of ``size_gb`` made from its
    image (none: it boots from the image)."""
    if size_gb is None:
        return None
    return [{"source": "image", "size_gb": size_gb, "boot_index": 0}]


def to_out(server: Server, site_name: str, port: PortOut | None = None) -> ServerOut:
    return ServerOut(
        id=server.id,
        name=server.name,
        project_id=server.project_id,
        site=site_name,
        status=server.status,
        flavor=server.flavor,
        image=server.image,
        network=server.network,
        port=port,
        block_devices=server.block_devices,
        task=server.task_operation_id,
        site_server_id=server.site_server_id,
        error=server.error,
        created_at=server.created_at,
        updated_at=server.updated_at,
    )


def place(
    session: Session, spec: ServerIn, projects: set[str] | None, network: Network | None
) -> Site:
    """The named site, or the caller's site holding the fewest servers (ties by name); with
    a Cascade network, one of the sites it spans."""
    sites = visible_sites(session, projects)
    if spec.site is not None:
        for site in sites:
            if spec.site in (site.id, site.name):
                if network is not None:
                    check_spans(session, network, site)
                return site
        raise BadRequest(f"Unknown site {spec.site!r}: it is not registered or not visible.")
    if network is not None:
        spanned = {site.id for site in spanned_sites(session, network)}
        sites = [site for site in sites if site.id in spanned]
        if not sites:
            raise BadRequest(f"network {network.name} is present at none of your sites yet")
    if not sites:
        raise BadRequest("No site to place the server on: register a site first.")
    load = dict(
        session.execute(select(Server.site_id, func.count()).group_by(Server.site_id)).all()
    )
    return min(sites, key=lambda site: (load.get(site.id, 0), site.name))


class ServerService:
    def __init__(self, db: Database, operations: Operations) -> None:
        self._db = db
        self._operations = operations

    def show(self, server_id: str, projects: set[str] | None) -> ServerOut:
        """The server, if one of ``projects`` (None: any) holds it; else 404."""
        with self._db.session() as session:
            return show(session, server_id, projects)

    def list(self, projects: set[str] | None, site: str | None) -> list[ServerOut]:
        """Servers of ``projects`` (None: all), at one site (name or id) or every site."""
        with self._db.session() as session:
            return listing(session, projects, site)

    def create(
        self, spec: ServerIn, project_id: str, projects: set[str] | None, key: str | None
    ) -> Operation:
        """Accept a create; returns its operation (its ``resource_id`` is the server's)."""

        def write(session: Session, operation_id: str) -> tuple[str, str]:
            network = usable_network(session, spec.port, projects) if spec.port else None
            site = place(session, spec, projects, network)
            server = Server(
                name=spec.name,
                project_id=project_id,
                site_id=site.id,
                flavor=spec.flavor,
                image=spec.image,
                network=spec.network,
                block_devices=boot_volume(spec.boot_volume_gb),
                status="BUILD",
                task_operation_id=operation_id,
            )
            session.add(server)
            session.flush()
            if network is not None and spec.port is not None:
                allocate(session, network, site, server.id, spec.port.ip)
            return "server", server.id

        request = {**spec.model_dump(), "site": spec.site}
        return self._operations.accept(
            kind="server.create",
            project_id=project_id,
            request=request,
            write=write,
            idempotency_key=key,
        )

    def act(self, server_id: str, action: str, project_id: str, key: str | None) -> Operation:
        """Accept reboot, stop, start, delete or recreate on a server; returns its operation."""

        def write(session: Session, operation_id: str) -> tuple[str, str]:
            if action == "delete":
                refuse_if_holding(session, server_id)
            SERVERS.begin(session, server_id, action, operation_id)
            return "server", server_id

        return self._operations.accept(
            kind=f"server.{action}",
            project_id=project_id,
            request={"server": server_id},
            write=write,
            idempotency_key=key,
        )


def _rows() -> Select[Server, str, NetworkPort, str]:
    """Servers with their site's name, their Cascade port and its network's name."""
    return (
        select(Server, Site.name, NetworkPort, Network.name)
        .join(Site, Site.id == Server.site_id)
        .outerjoin(NetworkPort, NetworkPort.server_id == Server.id)
        .outerjoin(Network, Network.id == NetworkPort.network_id)
    )


def _out(row: Any) -> ServerOut:
    server, site_name, port, network_name = row
    return to_out(server, site_name, to_port_out(port, network_name) if port else None)


def find(session: Session, server_id: str, projects: set[str] | None) -> tuple[Server, str]:
    row = session.execute(
        select(Server, Site.name)
        .join(Site, Site.id == Server.site_id)
        .where(Server.id == server_id)
    ).first()
    if row is None or not sees(projects, row[0].project_id):
        raise NotFound(f"Could not find server: {server_id}.")
    return row[0], row[1]


def show(session: Session, server_id: str, projects: set[str] | None) -> ServerOut:
    find(session, server_id, projects)
    return _out(session.execute(_rows().where(Server.id == server_id)).one())


def listing(session: Session, projects: set[str] | None, site: str | None) -> list[ServerOut]:
    query = _rows()
    query = seen_by(query, Server.project_id, projects)
    if site is not None:
        query = query.where((Site.name == site) | (Site.id == site))
    query = query.order_by(Site.name, Server.created_at, Server.id)
    return [_out(row) for row in session.execute(query)]
