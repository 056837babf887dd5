"""The master's side of identity replication: what replicas pull and what the master knows
of them. Registering a replica (its node key) and exporting the snapshot it starts from, the
change log after a position (waiting for news through one ``ChangeWatch`` per process), the
key set each should hold sealed for it, each replica's position and lag, listing a replica as
its region's identity endpoint, forgetting one. The HTTP routes (``cascade.api.replica``) are
a thin layer over this.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import select

from cascade.db import Database
from cascade.db.models import IdentityChange
from cascade.identity import changelog, rotation
from cascade.identity.bootstrap import ensure_identity_endpoints
from cascade.identity.changelog import ReplicaLag
from cascade.identity.keys import KeyRepository
from cascade.identity.replica import export_snapshot
from cascade.identity.sealing import NodeKey
from cascade.identity.store import bump_revision
from cascade.identity.watch import ChangeWatch


@dataclass(frozen=True)
class LogEntry:
    """One logged identity row write (``row`` None: deleted)."""

    seq: int
    table: str
    key: dict[str, Any]
    row: dict[str, Any] | None


@dataclass(frozen=True)
class LogPage:
    head: int
    changes: list[LogEntry]
    keys: str  # id of the key set replicas should hold


@dataclass(frozen=True)
class ReplicaReport:
    head: int
    keys: str
    replicas: list[ReplicaLag]


class ReplicaFeed:
    def __init__(
        self, db: Database, keys: KeyRepository, staged: KeyRepository, node: NodeKey
    ) -> None:
        self._db = db
        self._keys = keys
        self._staged = staged
        self._node = node

    @cached_property
    def _watch(self) -> ChangeWatch:
        return ChangeWatch(self._db, self._keys, self._staged)

    def key_package(self, recipient: str) -> rotation.KeyPackage:
        """The key set sites should hold, sealed for the node whose public key is given."""
        return rotation.seal_wanted(self._db, self._keys, self._staged, self._node, recipient)

    def register(self, replica: str, public_key: str) -> dict[str, Any]:
        """Register ``replica`` (its node key) and export the snapshot it starts from."""
        with self._db.session() as session:
            rotation.register(session, replica, public_key, changelog.head(session))
        return export_snapshot(self._db, self.key_package(public_key))

    def package_for(self, replica: str) -> rotation.KeyPackage:
        return self.key_package(rotation.replica_key(self._db, replica))

    def changes_after(self, after: int, limit: int) -> LogPage:
        with self._db.session() as session:
            rows = session.scalars(
                select(IdentityChange)
                .where(IdentityChange.seq > after)
                .order_by(IdentityChange.seq)
                .limit(limit)
            ).all()
            return LogPage(
                head=changelog.head(session),
                changes=[LogEntry(r.seq, r.table, r.key, r.row) for r in rows],
                keys=self.wanted_keys(),
            )

    async def wait(self, after: int, keys: str | None, timeout: float) -> None:
        """Return when there is a change after ``after``, a key set other than ``keys`` to
        hold, or after ``timeout`` seconds."""
        await self._watch.wait(after, keys, timeout)

    def note(self, replica: str, after: int, key_set: str | None) -> None:
        """Record a polling replica's position and the key set it holds."""
        with self._db.session() as session:
            changelog.note_replica(session, replica, after, key_set)

    def wanted_keys(self) -> str:
        return rotation.wanted_key_set(self._keys, self._staged)

    def report(self) -> ReplicaReport:
        with self._db.session() as session:
            return ReplicaReport(
                changelog.head(session), self.wanted_keys(), changelog.replicas(session)
            )

    def list_endpoint(self, replica: str, region: str, url: str) -> None:
        """List a registered replica (else 404) as ``region``'s identity endpoint."""
        rotation.replica_key(self._db, replica)
        with self._db.session() as session:
            bump_revision(session)
            ensure_identity_endpoints(session, region, url.rstrip("/"))

    def forget(self, replica: str) -> None:
        with self._db.session() as session:
            changelog.forget_replica(session, replica)
