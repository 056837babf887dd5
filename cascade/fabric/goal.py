"""The goal state of every host, kept in the database, and the messages that carry it.

Hosts, networks (VNI, CIDR) and ports are rows; a host's goal state is derived: its ports,
and for every network it has a port on, that network's neighbour table (every port's MAC,
IP and the tunnel endpoint of the host holding it). A remote port, one at another site,
has no host here: it is a neighbour at the tunnel endpoint it was given, on the table of
every host on its network, and nobody here runs an agent for it. Each change bumps the
revision of the host it touches and of the network it touches with an atomic ``UPDATE ...
RETURNING`` in the same transaction, so concurrent API processes never hand out one
revision twice. A change returns the messages to publish (after commit) and the revisions
each affected host must reach. What agents fetch is ``snapshots``'; acknowledgements and
convergence queries are ``tracking``'s. ``scratch_database``: the four tables alone, in a
new SQLite file, for a goal state derived anew at each start (an emulated region's, a
simulated fleet's), which no migration ever carries forward.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    String,
    Table,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.models import Base, FabricHost, FabricMembership, FabricNetwork, FabricPort
from cascade.errors import BadRequest, Conflict, NotFound
from cascade.fabric import bulk, messages
from cascade.fabric.addressing import host_subject, network_subject, validate_token
from cascade.fabric.dataplane.base import Neighbour
from cascade.fabric.snapshots import PAGE_SIZE, Outgoing, Snapshots, encode_pages, port_entry
from cascade.fabric.specs import (
    PortSpec,
    RemotePortSpec,
    allowed_ips,
    check_address,
    check_ip,
    check_routing,
    row,
    stored_local,
)
from cascade.fabric.tracking import Tracking

__all__ = ["GoalChange", "GoalStore", "PortSpec", "RemotePortSpec"]

HOSTS: Table = FabricHost.__table__  # type: ignore[assignment]
NETWORKS: Table = FabricNetwork.__table__  # type: ignore[assignment]
PORTS: Table = FabricPort.__table__  # type: ignore[assignment]
MEMBERS: Table = FabricMembership.__table__  # type: ignore[assignment]


@dataclass
class GoalChange:
    """What one goal-state change sends, and the revisions affected hosts must reach: the
    network's members at ``network_revision`` (none for a change of a port's rules only)
    and the port's host at ``host_revision`` (none for a remote port)."""

    outgoing: list[Outgoing] = field(default_factory=list)
    network_id: str | None = None
    network_revision: int = 0
    host: str | None = None
    host_revision: int = 0
    members: int = 0  # hosts on the network after the change, the change's host excluded


# The statements of a port change, built once: constructing and coercing them again on
# every call cost more than running them.
_FIND = (
    select(NETWORKS.c.vni, NETWORKS.c.cidr, HOSTS.c.tunnel_ip)
    .select_from(NETWORKS.join(HOSTS, true()))
    .where(NETWORKS.c.id == bindparam("network"), HOSTS.c.name == bindparam("host"))
)
_NETWORK = select(NETWORKS.c.vni, NETWORKS.c.cidr).where(NETWORKS.c.id == bindparam("network"))
_PORT = (
    select(
        PORTS,
        NETWORKS.c.vni,
        NETWORKS.c.cidr,
        func.coalesce(PORTS.c.vtep, HOSTS.c.tunnel_ip).label("endpoint"),
    )
    .join(NETWORKS, NETWORKS.c.id == PORTS.c.network_id)
    .outerjoin(HOSTS, HOSTS.c.name == PORTS.c.host)
    .where(PORTS.c.id == bindparam("port"))
)
_INSERT_PORT = insert(PORTS)
_JOIN = insert(MEMBERS).from_select(
    ["host", "network_id", "applied_revision"],
    select(bindparam("host", type_=String), bindparam("network", type_=String), literal(0)).where(
        ~exists().where(
            MEMBERS.c.host == bindparam("host"), MEMBERS.c.network_id == bindparam("network")
        )
    ),
)
_BUMP_NETWORK = (
    update(NETWORKS)
    .where(NETWORKS.c.id == bindparam("network"))
    .values(revision=NETWORKS.c.revision + 1)
    .returning(NETWORKS.c.revision)
)
_BUMP_HOST = (
    update(HOSTS)
    .where(HOSTS.c.name == bindparam("host"))
    .values(revision=HOSTS.c.revision + 1)
    .returning(HOSTS.c.revision)
)
_MEMBERS = (
    select(func.count()).select_from(MEMBERS).where(MEMBERS.c.network_id == bindparam("network"))
)
_OTHER_MEMBERS = _MEMBERS.where(MEMBERS.c.host != bindparam("host"))


def _neighbour(port_id: str, mac: str, ip: str, vtep: str, allowed: Iterable[str]) -> list[Any]:
    """A port as the hosts on its network get it."""
    return messages.neighbour_entry(port_id, Neighbour(mac, ip, vtep, tuple(allowed)))


def _network_delta(
    conn: Connection, network_id: str, up: list[list[Any]], removed: list[str]
) -> tuple[int, Outgoing]:
    """Bump the network's revision; the delta its members get (multicast)."""
    revision = int(conn.execute(_BUMP_NETWORK, {"network": network_id}).scalar_one())
    body = {"t": messages.NET_DELTA, "n": network_id, "r": revision, "up": up, "rm": removed}
    return revision, Outgoing(network_subject(network_id), messages.encode(body))


def _host_delta(
    conn: Connection, host: str, up: list[list[Any]], removed: list[str]
) -> tuple[int, messages.Body]:
    """Bump the host's revision; the body of the delta it gets (unicast)."""
    revision = int(conn.execute(_BUMP_HOST, {"host": host}).scalar_one())
    return revision, {"t": messages.HOST_DELTA, "r": revision, "up": up, "rm": removed}


def scratch_database(path: Path) -> Database:
    """A new SQLite database at ``path`` (a file there is replaced) holding the goal state's
    tables, made directly from their models (Alembic's migrations, all of Cascade's schema,
    cost 0.25 s of CPU at every start for a file that lives until the next)."""
    path.unlink(missing_ok=True)
    db = Database(f"sqlite:///{path.resolve()}")
    models = (FabricHost, FabricNetwork, FabricPort, FabricMembership)
    tables = [Base.metadata.tables[model.__tablename__] for model in models]
    Base.metadata.create_all(db.engine, tables=tables)
    return db


class GoalStore(Snapshots):
    def __init__(self, db: Database, page_size: int = PAGE_SIZE) -> None:
        super().__init__(db, page_size)
        self.tracking = Tracking(db)

    # --- writes -------------------------------------------------------------------------

    def register_host(self, name: str, tunnel_ip: str) -> None:
        validate_token(name, "host")
        check_ip(tunnel_ip, "tunnel_ip")
        with self._db.session() as session:
            host = session.get(FabricHost, name)
            if host is None:
                session.add(
                    FabricHost(name=name, tunnel_ip=tunnel_ip, revision=0, applied_revision=0)
                )
            elif host.tunnel_ip != tunnel_ip:
                raise Conflict(f"host {name} is registered with tunnel_ip {host.tunnel_ip}")

    def create_network(self, network_id: str, vni: int, cidr: str) -> None:
        validate_token(network_id, "network id")
        if not 1 <= vni < 2**24:
            raise BadRequest(f"vni must be within 1..16777215, got {vni}")
        try:
            ipaddress.ip_network(cidr)
        except ValueError:
            raise BadRequest(f"cidr {cidr!r} is not a network address") from None
        try:
            with self._db.session() as session:
                if session.get(FabricNetwork, network_id) is not None:
                    raise Conflict(f"network {network_id} exists")
                session.add(FabricNetwork(id=network_id, vni=vni, cidr=cidr, revision=0))
        except IntegrityError:
            raise Conflict(f"vni {vni} is already used by another network") from None

    def delete_network(self, network_id: str) -> None:
        with self._db.session() as session:
            network = self._network(session, network_id)
            ports = session.scalar(select(func.count()).where(FabricPort.network_id == network_id))
            if ports:
                raise Conflict(f"network {network_id} still has {ports} ports")
            session.delete(network)

    def add_port(self, spec: PortSpec) -> GoalChange:
        """Record a port and bump its network's and host's revisions, in one transaction.

        Core statements rather than ORM objects: this is the latency of every port that
        joins, and a session's object bookkeeping doubled it."""
        validate_token(spec.id, "port id")
        try:
            with self._db.engine.begin() as conn:
                keys = {"network": spec.network_id, "host": spec.host}
                found = conn.execute(_FIND, keys).one_or_none()
                if found is None:
                    if conn.scalar(_NETWORK, keys):
                        raise NotFound(f"host {spec.host} is not registered")
                    raise NotFound(f"network {spec.network_id} not found")
                check_address(spec, found.cidr)
                rules = list(spec.security_rules)
                local = {"security_rules": rules, "port_security": spec.port_security}
                routes = check_routing(spec.gateway, spec.routes) or None
                local |= {"router": spec.router, "gateway": spec.gateway, "routes": routes}
                conn.execute(_INSERT_PORT, row(spec, host=spec.host, **local))
                joined = conn.execute(_JOIN, keys).rowcount == 1
                entry = port_entry(spec, found.vni, found.cidr)
                table_vni = found.vni if joined else None
                return self._port_change(conn, spec, entry, found.tunnel_ip, table_vni)
        except IntegrityError:
            raise self._duplicate(spec) from None

    def add_remote_port(self, spec: RemotePortSpec) -> GoalChange:
        """Record a port at another site: a neighbour at ``spec.vtep`` for every host on its
        network. Only the network's revision moves and only the network delta is sent:
        no host here holds the port, so none gets a port or joins the network for it."""
        validate_token(spec.id, "port id")
        check_ip(spec.vtep, "vtep")
        try:
            with self._db.engine.begin() as conn:
                found = conn.execute(_NETWORK, {"network": spec.network_id}).one_or_none()
                if found is None:
                    raise NotFound(f"network {spec.network_id} not found")
                check_address(spec, found.cidr)
                remote = row(spec, host=None, vtep=spec.vtep)
                conn.execute(_INSERT_PORT, remote)
                allowed = remote["allowed_ips"] or ()
                neighbour = _neighbour(spec.id, spec.mac, spec.ip, spec.vtep, allowed)
                return self._remote_change(conn, spec.network_id, [neighbour], [])
        except IntegrityError:
            raise self._duplicate(spec) from None

    def _duplicate(self, spec: PortSpec | RemotePortSpec) -> Conflict:
        with self._db.session() as session:
            if session.get(FabricPort, spec.id) is not None:
                return Conflict(f"port {spec.id} exists")
        return Conflict(
            f"mac {spec.mac} or ip {spec.ip} is already used on network {spec.network_id}"
        )

    def update_port(
        self, port_id: str, security_rules: Sequence[dict[str, Any]], port_security: bool
    ) -> GoalChange:
        """Replace a local port's security rules and port security. Its host gets the whole
        new entry (setting a port replaces it); no neighbour table changes, so neither does
        a network's revision and the change concerns the port's host alone."""
        rules = list(security_rules)
        values = {"security_rules": rules, "port_security": port_security}
        return self._update_local(port_id, "its own site keeps its rules", values)

    def set_routing(
        self, port_id: str, gateway: str | None, routes: Iterable[tuple[str, str]]
    ) -> GoalChange:
        """Replace a local port's default gateway and routes, as ``update_port`` does its
        rules (the port's host alone gets the change)."""
        values = {"gateway": gateway, "routes": check_routing(gateway, routes) or None}
        return self._update_local(port_id, "its own site routes it", values)

    def _update_local(self, port_id: str, remote: str, values: dict[str, Any]) -> GoalChange:
        """Store new ``values`` of a local port and send its whole entry to its host."""
        with self._db.engine.begin() as conn:
            port = self._stored(conn, port_id)
            if port.host is None:
                raise BadRequest(f"port {port_id} is remote: {remote}")
            conn.execute(update(PORTS).where(PORTS.c.id == port_id).values(**values))
            port = self._stored(conn, port_id)
            entry = port_entry(stored_local(port), port.vni, port.cidr)
            host_rev, body = _host_delta(conn, port.host, [entry], [])
        unicast = messages.unicast(port.host, messages.encode(body))
        return GoalChange(
            outgoing=[Outgoing(host_subject(port.host), unicast)],
            host=port.host,
            host_revision=host_rev,
        )

    def set_allowed_ips(self, port_id: str, addresses: Iterable[str]) -> GoalChange:
        """Replace a port's allowed addresses (local or remote) in place: one network delta
        with the port's neighbour entry and, for a local port, its host's delta with its
        whole entry. The port itself stays (a service IP moving never flaps its VMs)."""
        allowed = allowed_ips(addresses)
        with self._db.engine.begin() as conn:
            port = self._stored(conn, port_id)
            stored = update(PORTS).where(PORTS.c.id == port_id)
            conn.execute(stored.values(allowed_ips=allowed or None))
            up = [_neighbour(port_id, port.mac, port.ip, port.endpoint, allowed)]
            if port.host is None:
                return self._remote_change(conn, port.network_id, up, [])
            net_rev, network_delta = _network_delta(conn, port.network_id, up, [])
            spec = stored_local(port, allowed_ips=tuple(allowed))
            entry = port_entry(spec, port.vni, port.cidr)
            host_rev, body = _host_delta(conn, port.host, [entry], [])
            keys = {"network": port.network_id, "host": port.host}
            members = conn.scalar(_OTHER_MEMBERS, keys) or 0
        unicast = messages.unicast(port.host, messages.encode(body))
        return GoalChange(
            outgoing=[Outgoing(host_subject(port.host), unicast), network_delta],
            network_id=port.network_id,
            network_revision=net_rev,
            host=port.host,
            host_revision=host_rev,
            members=members,
        )

    def remove_port(self, port_id: str) -> GoalChange:
        """Remove a port, local or remote (a remote one: its network's delta only)."""
        with self._db.engine.begin() as conn:
            port = self._stored(conn, port_id)
            conn.execute(delete(PORTS).where(PORTS.c.id == port_id))
            if port.host is None:
                return self._remote_change(conn, port.network_id, [], [port_id])
            spec = PortSpec(port_id, port.network_id, port.host, port.mac, port.ip)
            # The host's row before its memberships, in the order acknowledgements take them
            # (bulk.record_acks): the other order deadlocks with an ack batch on PostgreSQL.
            conn.execute(select(HOSTS.c.name).where(HOSTS.c.name == spec.host).with_for_update())
            conn.execute(
                delete(MEMBERS).where(
                    MEMBERS.c.host == spec.host,
                    MEMBERS.c.network_id == spec.network_id,
                    ~exists().where(
                        PORTS.c.host == spec.host, PORTS.c.network_id == spec.network_id
                    ),
                )
            )
            return self._port_change(conn, spec, None, "")

    def _port_change(
        self,
        conn: Connection,
        spec: PortSpec,
        entry: list[Any] | None,
        vtep: str,
        table_vni: int | None = None,
    ) -> GoalChange:
        """Bump revisions and build the messages: a port added (``entry``, the port as its
        host gets it) or removed (``entry`` None).

        A port that brings its host onto the network (``table_vni`` given) is sent with the
        network's table, read in this transaction at the new revision, when the table fits
        in one page: the host is spared a round trip to ask for it. Larger tables are
        asked for, and served off the path of the change."""
        keys = {"network": spec.network_id, "host": spec.host}
        removed = [] if entry else [spec.id]
        up = [_neighbour(spec.id, spec.mac, spec.ip, vtep, spec.allowed_ips)] if entry else []
        net_rev, network_delta = _network_delta(conn, spec.network_id, up, removed)
        host_rev, host_body = _host_delta(conn, spec.host, [entry] if entry else [], removed)
        members = conn.scalar(_OTHER_MEMBERS, keys) or 0
        pages: tuple[bytes, ...] = ()
        if table_vni is not None and members < self.page_size:
            table = bulk.network_entries(conn, self._db.dialect, spec.network_id)
            pages = encode_pages(spec.network_id, net_rev, table_vni, table, self.page_size)
            host_body["tf"] = [spec.network_id]
        unicast = host_subject(spec.host)
        return GoalChange(
            outgoing=[
                Outgoing(unicast, messages.unicast(spec.host, messages.encode(host_body))),
                *(Outgoing(unicast, messages.unicast(spec.host, page)) for page in pages),
                network_delta,
            ],
            network_id=spec.network_id,
            network_revision=net_rev,
            host=spec.host,
            host_revision=host_rev,
            members=members,
        )

    @staticmethod
    def _remote_change(
        conn: Connection, network_id: str, up: list[list[Any]], removed: list[str]
    ) -> GoalChange:
        """A remote port added (``up``) or removed: its network's delta, for every member."""
        net_rev, network_delta = _network_delta(conn, network_id, up, removed)
        return GoalChange(
            outgoing=[network_delta],
            network_id=network_id,
            network_revision=net_rev,
            members=conn.scalar(_MEMBERS, {"network": network_id}) or 0,
        )

    # --- reads --------------------------------------------------------------------------

    def port(self, port_id: str) -> dict[str, Any] | None:
        """A stored port, local (``host`` holds it) or remote (at ``vtep``), or None."""
        with self._db.engine.connect() as conn:
            port = conn.execute(_PORT, {"port": port_id}).one_or_none()
        if port is None:
            return None
        return {
            "id": port.id,
            "kind": "remote" if port.host is None else "local",
            "network_id": port.network_id,
            "host": port.host,
            "vtep": port.vtep,
            "mac": port.mac,
            "ip": port.ip,
            "security_rules": list(port.security_rules),
            "port_security": bool(port.port_security),
            "allowed_ips": list(port.allowed_ips or ()),
            "router": port.router,
            "gateway": port.gateway,
            "routes": [list(route) for route in port.routes or ()],
        }

    @staticmethod
    def _stored(conn: Connection, port_id: str) -> Row[Any]:
        """A port's row with its network's VNI and CIDR."""
        port = conn.execute(_PORT, {"port": port_id}).one_or_none()
        if port is None:
            raise NotFound(f"port {port_id} not found")
        return port

    @staticmethod
    def _network(session: Session, network_id: str) -> FabricNetwork:
        network = session.get(FabricNetwork, network_id)
        if network is None:
            raise NotFound(f"network {network_id} not found")
        return network
