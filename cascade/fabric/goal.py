"""The goal state of every host, kept in the database, and the messages that carry it.

Hosts, networks (VNI, CIDR) and ports are rows; a host's goal state is derived: its ports,
and for every network it has a port on, that network's neighbour table (every port's MAC,
IP and the tunnel endpoint of the host holding it). Each change bumps the revision of the
host it touches and of the network it touches with an atomic ``UPDATE ... RETURNING`` in the
same transaction, so concurrent API processes never hand out one revision twice. A change
returns the messages to publish (after commit) and the revisions each affected host must
reach. Acknowledgements and convergence queries are ``tracking``'s.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Connection,
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
from cascade.db.models import FabricHost, FabricMembership, FabricNetwork, FabricPort, utcnow
from cascade.errors import BadRequest, Conflict, NotFound
from cascade.fabric import bulk, messages
from cascade.fabric.addressing import host_subject, network_subject, validate_token
from cascade.fabric.tracking import Tracking

PAGE_SIZE = 5000
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")

HOSTS: Table = FabricHost.__table__  # type: ignore[assignment]
NETWORKS: Table = FabricNetwork.__table__  # type: ignore[assignment]
PORTS: Table = FabricPort.__table__  # type: ignore[assignment]
MEMBERS: Table = FabricMembership.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Outgoing:
    subject: str
    data: bytes


@dataclass
class GoalChange:
    """What one goal-state change sends, and the revisions affected hosts must reach."""

    outgoing: list[Outgoing] = field(default_factory=list)
    network_id: str | None = None
    network_revision: int = 0
    host: str | None = None
    host_revision: int = 0
    members: int = 0  # hosts on the network after the change, the change's host excluded


@dataclass(frozen=True)
class PortSpec:
    id: str
    network_id: str
    host: str
    mac: str
    ip: str  # address without prefix
    security_rules: tuple[dict[str, Any], ...] = ()


# The statements of a port change, built once: constructing and coercing them again on
# every call cost more than running them.
_FIND = (
    select(NETWORKS.c.vni, NETWORKS.c.cidr, HOSTS.c.tunnel_ip)
    .select_from(NETWORKS.join(HOSTS, true()))
    .where(NETWORKS.c.id == bindparam("network"), HOSTS.c.name == bindparam("host"))
)
_NETWORK_EXISTS = select(NETWORKS.c.id).where(NETWORKS.c.id == bindparam("network"))
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
_OTHER_MEMBERS = (
    select(func.count())
    .select_from(MEMBERS)
    .where(MEMBERS.c.network_id == bindparam("network"), MEMBERS.c.host != bindparam("host"))
)


def _port_entry(spec: PortSpec, vni: int, cidr: str) -> list[Any]:
    """A port as its host receives it (the address carries the network's prefix length)."""
    prefix = ipaddress.ip_network(cidr).prefixlen
    rules = list(spec.security_rules)
    return [spec.id, spec.network_id, vni, spec.mac, f"{spec.ip}/{prefix}", rules]


def _check_port(spec: PortSpec, network_id: str, cidr: str) -> None:
    if not MAC.match(spec.mac):
        raise BadRequest(
            f"mac {spec.mac!r} must be six lower-case hex pairs like 02:00:00:00:00:01"
        )
    try:
        address = ipaddress.ip_address(spec.ip)
    except ValueError:
        raise BadRequest(f"ip {spec.ip!r} is not an IP address") from None
    if address not in ipaddress.ip_network(cidr):
        raise BadRequest(f"ip {spec.ip} is outside network {network_id}'s {cidr}")


class GoalStore:
    def __init__(self, db: Database, page_size: int = PAGE_SIZE) -> None:
        self._db = db
        self._page_size = page_size
        self._pages = lru_cache(maxsize=8)(self._snapshot_pages)
        self.tracking = Tracking(db)

    # --- writes -------------------------------------------------------------------------

    def register_host(self, name: str, tunnel_ip: str) -> None:
        validate_token(name, "host")
        try:
            ipaddress.ip_address(tunnel_ip)
        except ValueError:
            raise BadRequest(f"tunnel_ip {tunnel_ip!r} is not an IP address") from None
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
                    if conn.scalar(_NETWORK_EXISTS, keys):
                        raise NotFound(f"host {spec.host} is not registered")
                    raise NotFound(f"network {spec.network_id} not found")
                _check_port(spec, spec.network_id, found.cidr)
                conn.execute(
                    _INSERT_PORT,
                    {
                        "id": spec.id,
                        "network_id": spec.network_id,
                        "host": spec.host,
                        "mac": spec.mac,
                        "ip": spec.ip,
                        "security_rules": list(spec.security_rules),
                        "created_at": utcnow(),
                    },
                )
                joined = conn.execute(_JOIN, keys).rowcount == 1
                entry = _port_entry(spec, found.vni, found.cidr)
                table_vni = found.vni if joined else None
                return self._port_change(conn, spec, entry, found.tunnel_ip, table_vni)
        except IntegrityError:
            raise self._duplicate(spec) from None

    def _duplicate(self, spec: PortSpec) -> Conflict:
        with self._db.session() as session:
            if session.get(FabricPort, spec.id) is not None:
                return Conflict(f"port {spec.id} exists")
        return Conflict(
            f"mac {spec.mac} or ip {spec.ip} is already used on network {spec.network_id}"
        )

    def remove_port(self, port_id: str) -> GoalChange:
        with self._db.engine.begin() as conn:
            port = conn.execute(
                select(PORTS.c.network_id, PORTS.c.host, PORTS.c.mac, PORTS.c.ip).where(
                    PORTS.c.id == port_id
                )
            ).one_or_none()
            if port is None:
                raise NotFound(f"port {port_id} not found")
            spec = PortSpec(port_id, port.network_id, port.host, port.mac, port.ip)
            conn.execute(delete(PORTS).where(PORTS.c.id == port_id))
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
        net_rev = int(conn.execute(_BUMP_NETWORK, keys).scalar_one())
        host_rev = int(conn.execute(_BUMP_HOST, keys).scalar_one())
        members = conn.scalar(_OTHER_MEMBERS, keys)
        if entry is None:
            net_body = {
                "t": messages.NET_DELTA,
                "n": spec.network_id,
                "r": net_rev,
                "up": [],
                "rm": [spec.id],
            }
            host_body: dict[str, Any] = {
                "t": messages.HOST_DELTA,
                "r": host_rev,
                "up": [],
                "rm": [spec.id],
            }
        else:
            net_body = {
                "t": messages.NET_DELTA,
                "n": spec.network_id,
                "r": net_rev,
                "up": [[spec.id, spec.mac, spec.ip, vtep]],
                "rm": [],
            }
            host_body = {
                "t": messages.HOST_DELTA,
                "r": host_rev,
                "up": [entry],
                "rm": [],
            }
        pages: tuple[bytes, ...] = ()
        if table_vni is not None and (members or 0) < self._page_size:
            table = bulk.network_entries(conn, self._db.dialect, spec.network_id)
            pages = self._encode_pages(spec.network_id, net_rev, table_vni, table)
            host_body["tf"] = [spec.network_id]
        unicast = host_subject(spec.host)
        return GoalChange(
            outgoing=[
                Outgoing(unicast, messages.unicast(spec.host, messages.encode(host_body))),
                *(Outgoing(unicast, messages.unicast(spec.host, page)) for page in pages),
                Outgoing(network_subject(spec.network_id), messages.encode(net_body)),
            ],
            network_id=spec.network_id,
            network_revision=net_rev,
            host=spec.host,
            host_revision=host_rev,
            members=members or 0,
        )

    @staticmethod
    def _network(session: Session, network_id: str) -> FabricNetwork:
        network = session.get(FabricNetwork, network_id)
        if network is None:
            raise NotFound(f"network {network_id} not found")
        return network

    # --- what agents fetch --------------------------------------------------------------

    def host_snapshot(self, host: str) -> Outgoing:
        with self._db.session() as session:
            record = session.get(FabricHost, host)
            if record is None:
                raise NotFound(f"host {host} is not registered")
            rows = session.execute(
                select(FabricPort, FabricNetwork)
                .join(FabricNetwork, FabricNetwork.id == FabricPort.network_id)
                .where(FabricPort.host == host)
            ).all()
            ports = [
                _port_entry(
                    PortSpec(p.id, p.network_id, host, p.mac, p.ip, tuple(p.security_rules)),
                    n.vni,
                    n.cidr,
                )
                for p, n in rows
            ]
            body = {"t": messages.HOST_SNAPSHOT, "r": record.revision, "ports": ports}
        return Outgoing(host_subject(host), messages.unicast(host, messages.encode(body)))

    def network_snapshot(self, network_id: str, host: str) -> list[Outgoing]:
        """The network's neighbour table for one host, in pages, at the current revision."""
        with self._db.session() as session:
            found = session.execute(
                select(NETWORKS.c.revision, NETWORKS.c.vni).where(NETWORKS.c.id == network_id)
            ).one_or_none()
            if found is None:
                raise NotFound(f"network {network_id} not found")
            revision, vni = found
        subject = host_subject(host)
        return [
            Outgoing(subject, messages.unicast(host, page))
            for page in self._pages(network_id, revision, vni)
        ]

    def _snapshot_pages(self, network_id: str, revision: int, vni: int) -> tuple[bytes, ...]:
        with self._db.session() as session:
            entries = bulk.network_entries(session, self._db.dialect, network_id)
        return self._encode_pages(network_id, revision, vni, entries)

    def _encode_pages(
        self, network_id: str, revision: int, vni: int, entries: list[list[str]]
    ) -> tuple[bytes, ...]:
        size = self._page_size
        count = max(1, -(-len(entries) // size))
        return tuple(
            messages.encode(
                {
                    "t": messages.NET_SNAPSHOT,
                    "n": network_id,
                    "r": revision,
                    "vni": vni,
                    "pg": page,
                    "of": count,
                    "up": entries[page * size : (page + 1) * size],
                }
            )
            for page in range(count)
        )

    def goal(self, host: str) -> Outgoing:
        """A nudge carrying the revisions ``host`` should be at."""
        with self._db.session() as session:
            revision = session.scalar(select(FabricHost.revision).where(FabricHost.name == host))
            if revision is None:
                raise NotFound(f"host {host} is not registered")
            rows = session.execute(
                select(FabricNetwork.id, FabricNetwork.revision)
                .join(FabricMembership, FabricMembership.network_id == FabricNetwork.id)
                .where(FabricMembership.host == host)
            )
            nets = {network_id: rev for network_id, rev in rows}
        body = {"t": messages.GOAL, "r": revision, "n": nets}
        return Outgoing(host_subject(host), messages.unicast(host, messages.encode(body)))

    # --- convergence --------------------------------------------------------------------
