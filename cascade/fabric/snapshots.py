"""What agents fetch from the goal state: a host's snapshot (its ports), a network's
neighbour table in pages, and the goal nudge (the revisions a host should hold); and how a
port and a table are put into messages, which ``goal`` uses for its deltas too.

A table is read in one statement (``bulk``) and its encoded pages are cached per network
revision: the hosts of a network asking for it at once cost one read. It may import
``cascade.db``, ``cascade.errors`` and the fabric's ``addressing``, ``bulk``, ``messages``
and the dataplane's values (``dataplane.base``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import select

from cascade.db import Database
from cascade.db.models import FabricHost, FabricMembership, FabricNetwork, FabricPort
from cascade.errors import NotFound
from cascade.fabric import bulk, messages
from cascade.fabric.addressing import host_subject
from cascade.fabric.dataplane.base import LocalPort

PAGE_SIZE = 5000


@dataclass(frozen=True)
class Outgoing:
    subject: str
    data: bytes


class PortFields(Protocol):
    """A local port as stored or as asked for: what its host receives."""

    @property
    def id(self) -> str: ...
    @property
    def network_id(self) -> str: ...
    @property
    def mac(self) -> str: ...
    @property
    def ip(self) -> str: ...  # address without prefix
    @property
    def security_rules(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def port_security(self) -> bool: ...
    @property
    def allowed_ips(self) -> Sequence[str] | None: ...  # None (stored) or () when none
    @property
    def router(self) -> str | None: ...
    @property
    def gateway(self) -> str | None: ...
    @property
    def routes(self) -> Sequence[Sequence[str]] | None: ...  # None (stored) or () when none


def port_entry(port: PortFields, vni: int, cidr: str) -> list[Any]:
    """A port as its host receives it (the address carries the network's prefix length)."""
    prefix = ipaddress.ip_network(cidr).prefixlen
    address = f"{port.ip}/{prefix}"
    rules, allowed = tuple(port.security_rules), tuple(port.allowed_ips or ())
    routes = tuple((destination, nexthop) for destination, nexthop in port.routes or ())
    local = LocalPort(
        port.id, port.network_id, vni, port.mac, address, rules, port.port_security, allowed,
        port.router, port.gateway, routes,
    )  # fmt: skip
    return messages.port_entry(local)


def encode_pages(
    network_id: str, revision: int, vni: int, entries: list[list[Any]], size: int
) -> tuple[bytes, ...]:
    """A network's table as snapshot pages of ``size`` entries (one page when empty)."""
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


class Snapshots:
    def __init__(self, db: Database, page_size: int = PAGE_SIZE) -> None:
        self._db = db
        self.page_size = page_size
        self._pages = lru_cache(maxsize=8)(self._snapshot_pages)

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
            ports = [port_entry(p, n.vni, n.cidr) for p, n in rows]
            body = {"t": messages.HOST_SNAPSHOT, "r": record.revision, "ports": ports}
        return Outgoing(host_subject(host), messages.unicast(host, messages.encode(body)))

    def network_snapshot(self, network_id: str, host: str) -> list[Outgoing]:
        """The network's neighbour table for one host, in pages, at the current revision."""
        with self._db.session() as session:
            found = session.execute(
                select(FabricNetwork.revision, FabricNetwork.vni).where(
                    FabricNetwork.id == network_id
                )
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
        return encode_pages(network_id, revision, vni, entries, self.page_size)

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
