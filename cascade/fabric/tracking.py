"""Convergence tracking: what each host has applied against its goal.

Agents' acknowledgements are written in batches (``bulk.record_acks``); every question
about convergence is a query comparing applied with goal revisions: which hosts lag, how
many hosts a change has yet to reach, and each host's status for operators. The
controller nudges the lagging hosts and also those whose agent never acknowledged: a lost
first snapshot request, snapshot or acknowledgement leaves a host with no ports at
revision 0, level with its goal, and nothing else would ever ask again.

Revisions say what an agent applied, not what its dataplane can do: a host whose agent
acknowledged everything but said its dataplane does not enforce security rules (every
dataplane today) is converged for its ports and tables, and *not* for the rules of its
ports that carry any; ``rules_not_enforced`` counts those hosts, and each host's status
says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    CompoundSelect,
    Subquery,
    Table,
    and_,
    func,
    select,
    union,
)

from cascade.db import Database
from cascade.db.models import FabricHost, FabricMembership, FabricNetwork, FabricPort, utcnow
from cascade.fabric import bulk
from cascade.fabric.messages import Ack

if TYPE_CHECKING:
    from cascade.fabric.goal import GoalChange

HOSTS: Table = FabricHost.__table__  # type: ignore[assignment]
NETWORKS: Table = FabricNetwork.__table__  # type: ignore[assignment]
MEMBERS: Table = FabricMembership.__table__  # type: ignore[assignment]
PORTS: Table = FabricPort.__table__  # type: ignore[assignment]
# Whether the host's last acknowledgement said its dataplane enforces security rules.
ENFORCES_RULES = FabricHost.rules_enforced


def _ports_with_rules() -> Subquery:
    """Per host, how many of its ports carry security rules."""
    return (
        select(PORTS.c.host, func.count().label("ruled"))
        .where(func.json_array_length(PORTS.c.security_rules) > 0)
        .group_by(PORTS.c.host)
        .subquery()
    )


class Tracking:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record_acks(self, acks: dict[str, Ack]) -> None:
        """Write each host's latest acknowledgement (older ones never replace it)."""
        if acks:
            with self._db.session() as session:
                bulk.record_acks(session, self._db.dialect, acks, utcnow())

    def lagging(
        self,
        hosts: Iterable[str] | None = None,
        limit: int | None = None,
        unacknowledged: bool = False,
    ) -> list[str]:
        """Hosts whose applied revisions trail their goal (optionally among ``hosts``), and
        with ``unacknowledged`` (whom the controller nudges) the hosts never acknowledged."""
        query = self._lagging_query(hosts, unacknowledged)
        if limit is not None:
            query = query.limit(limit)
        with self._db.session() as session:
            return list(session.scalars(query))

    def counts(self) -> tuple[int, int]:
        """How many hosts, among all of them, are converged and how many lag."""
        behind = self._lagging_query(None, unacknowledged=False).subquery()
        with self._db.session() as session:
            total = session.scalar(select(func.count()).select_from(HOSTS)) or 0
            lagging = session.scalar(select(func.count()).select_from(behind)) or 0
        return total - lagging, lagging

    def rules_not_enforced(self, hosts: Iterable[str] | None = None) -> int:
        """How many hosts (optionally among ``hosts``) hold ports with security rules that
        their dataplane does not enforce."""
        ruled = _ports_with_rules()
        query = (
            select(func.count())
            .select_from(HOSTS.join(ruled, ruled.c.host == HOSTS.c.name))
            .where(ENFORCES_RULES.is_not(True))
        )
        if hosts is not None:
            query = query.where(HOSTS.c.name.in_(list(hosts)))
        with self._db.session() as session:
            return session.scalar(query) or 0

    @staticmethod
    def _lagging_query(
        hosts: Iterable[str] | None, unacknowledged: bool
    ) -> CompoundSelect[tuple[str]]:
        trails = HOSTS.c.applied_revision < HOSTS.c.revision
        behind_self = select(HOSTS.c.name).where(
            trails | HOSTS.c.acked_at.is_(None) if unacknowledged else trails
        )
        behind_net = (
            select(MEMBERS.c.host)
            .join(NETWORKS, NETWORKS.c.id == MEMBERS.c.network_id)
            .where(MEMBERS.c.applied_revision < NETWORKS.c.revision)
        )
        if hosts is not None:
            wanted = list(hosts)
            behind_self = behind_self.where(HOSTS.c.name.in_(wanted))
            behind_net = behind_net.where(MEMBERS.c.host.in_(wanted))
        return union(behind_self, behind_net)

    def pending(self, change: GoalChange) -> int:
        """How many hosts affected by ``change`` have not yet applied it."""
        with self._db.session() as session:
            count = 0
            if change.network_id is not None:
                members = (
                    select(func.count())
                    .select_from(MEMBERS)
                    .where(
                        MEMBERS.c.network_id == change.network_id,
                        MEMBERS.c.applied_revision < change.network_revision,
                    )
                )
                if change.host is not None:  # counted below (none for a remote port)
                    members = members.where(MEMBERS.c.host != change.host)
                count += session.scalar(members) or 0
            if change.host is not None:
                host_behind = (
                    session.scalar(
                        select(func.count())
                        .select_from(HOSTS)
                        .where(
                            HOSTS.c.name == change.host,
                            HOSTS.c.applied_revision < change.host_revision,
                        )
                    )
                    or 0
                )
                net_behind = 0
                if change.network_id is not None:
                    net_behind = (
                        session.scalar(
                            select(func.count())
                            .select_from(MEMBERS)
                            .where(
                                MEMBERS.c.host == change.host,
                                MEMBERS.c.network_id == change.network_id,
                                MEMBERS.c.applied_revision < change.network_revision,
                            )
                        )
                        or 0
                    )
                count += 1 if host_behind or net_behind else 0
            return count

    def hosts(self, lagging_only: bool = False, limit: int = 1000) -> list[dict[str, Any]]:
        """Per host: goal and applied revision, networks behind, last acknowledgement."""
        return self._status(lagging_only=lagging_only, limit=limit)

    def host(self, name: str) -> dict[str, Any] | None:
        """One host's status as ``hosts`` gives it, or None if it is not registered."""
        found = self._status(name=name, limit=1)
        return found[0] if found else None

    def _status(
        self, *, lagging_only: bool = False, name: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        behind = (
            select(MEMBERS.c.host, func.count().label("behind"))
            .join(NETWORKS, NETWORKS.c.id == MEMBERS.c.network_id)
            .where(MEMBERS.c.applied_revision < NETWORKS.c.revision)
            .group_by(MEMBERS.c.host)
            .subquery()
        )
        ruled = _ports_with_rules()
        query = (
            select(
                HOSTS,
                func.coalesce(behind.c.behind, 0).label("networks_behind"),
                func.coalesce(ruled.c.ruled, 0).label("ports_with_rules"),
                ENFORCES_RULES.label("enforces_rules"),
            )
            .outerjoin(behind, behind.c.host == HOSTS.c.name)
            .outerjoin(ruled, ruled.c.host == HOSTS.c.name)
            .order_by(HOSTS.c.name)
            .limit(limit)
        )
        if name is not None:
            query = query.where(HOSTS.c.name == name)
        if lagging_only:
            query = query.where(
                and_((HOSTS.c.applied_revision < HOSTS.c.revision) | (behind.c.behind > 0))
            )
        with self._db.session() as session:
            rows = session.execute(query).mappings().all()
        return [_host_status(row) for row in rows]


def _host_status(row: Any) -> dict[str, Any]:
    converged = row["applied_revision"] >= row["revision"] and not row["networks_behind"]
    enforces = bool(row["enforces_rules"])
    return {
        "name": row["name"],
        "tunnel_ip": row["tunnel_ip"],
        "revision": row["revision"],
        "applied_revision": row["applied_revision"],
        "networks_behind": row["networks_behind"],
        "converged": converged,
        "acked_at": row["acked_at"],
        "enforces_rules": enforces,
        "ports_with_rules": row["ports_with_rules"],
        "rules_enforced": not row["ports_with_rules"] or (enforces and converged),
    }
