"""The master's side of identity replication: what replicas pull and what the master knows
of them. Registering a replica (its node key) and exporting the snapshot it starts from, the
change log after a position (waiting for news through one ``ChangeWatch`` per process), the
key set each should hold sealed for it, each replica's position and lag, the key set each has
*proven* it holds (``cascade.identity.possession``: a challenge goes out with every snapshot,
key package and change log answer; a claim counts only with a proof over it), listing a
replica as its region's identity endpoint, forgetting one. The HTTP routes
(``cascade.api.replica``) are a thin layer over this.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from sqlalchemy import select

from cascade.db import Database
from cascade.db.models import IdentityChange
from cascade.identity import changelog, rotation
from cascade.identity.bootstrap import ensure_identity_endpoints
from cascade.identity.changelog import ReplicaLag
from cascade.identity.keys import KeyRepository, KeyRepositoryError
from cascade.identity.possession import Challenges, proves
from cascade.identity.replica import export_snapshot
from cascade.identity.sealing import NodeKey
from cascade.identity.store import bump_revision
from cascade.identity.watch import ChangeWatch

log = logging.getLogger(__name__)


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
    challenge: str = ""  # for the replica that asked: to prove on its next poll which set it holds


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

    @cached_property
    def _challenges(self) -> Challenges:
        return Challenges(self._node.secret("key possession challenges"))

    def challenge(self, replica: str) -> str:
        """A fresh challenge for ``replica`` to prove, on its next poll, the key set it holds."""
        return self._challenges.issue(replica)

    def key_package(self, recipient: str) -> rotation.KeyPackage:
        """The key set sites should hold, sealed for the node whose public key is given."""
        return rotation.seal_wanted(self._db, self._keys, self._staged, self._node, recipient)

    def register(self, replica: str, public_key: str) -> dict[str, Any]:
        """Register ``replica`` (its node key) and export the snapshot it starts from."""
        with self._db.session() as session:
            renewed = rotation.register(session, replica, public_key, changelog.head(session))
        if renewed:
            log.warning(
                "identity master: replica %s registered again with another node key: its key "
                "packages are sealed for the new one from now on",
                replica,
            )
        package = replace(self.key_package(public_key), challenge=self.challenge(replica))
        return export_snapshot(self._db, package)

    def package_for(self, replica: str) -> rotation.KeyPackage:
        package = self.key_package(rotation.replica_key(self._db, replica))
        return replace(package, challenge=self.challenge(replica))

    def changes_after(self, after: int, limit: int, replica: str | None = None) -> LogPage:
        """The changes after ``after`` (at most ``limit``) and, for ``replica``, a challenge."""
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
                challenge=self.challenge(replica) if replica is not None else "",
            )

    async def wait(self, after: int, keys: str | None, timeout: float) -> None:
        """Return when there is a change after ``after``, a key set other than ``keys`` to
        hold, or after ``timeout`` seconds."""
        await self._watch.wait(after, keys, timeout)

    def note(
        self,
        replica: str,
        after: int,
        key_set: str | None,
        challenge: str | None = None,
        proof: str | None = None,
    ) -> bool:
        """Record a polling replica's position, and the key set it claims to hold if it proves
        it: ``proof`` answers a ``challenge`` this master issued to it (module doc). A claim
        without a valid proof is not recorded (the last proven set stays). Returns whether
        the claim was proven."""
        proven = key_set is not None and self._proven(replica, key_set, challenge, proof)
        with self._db.session() as session:
            changelog.note_replica(session, replica, after, key_set if proven else None)
        return proven

    def _proven(self, replica: str, key_set: str, challenge: str | None, proof: str | None) -> bool:
        if not challenge or not proof:
            return False
        if not self._challenges.valid(replica, challenge):
            log.info("identity master: replica %s answered an expired challenge", replica)
            return False
        keys = self._verifiable().get(key_set)
        if keys is None:  # neither the master's set nor the staged one: nothing to check with
            return False
        if not proves(keys, replica, challenge, proof):
            log.warning(
                "identity master: replica %s claims key set %s with a proof that does not "
                "verify: not counted as holding it",
                replica,
                key_set,
            )
            return False
        return True

    def _verifiable(self) -> dict[str, dict[int, bytes]]:
        """The key sets this master can check a proof against: its own, and the staged one."""
        found = dict([self._keys.held()])
        with contextlib.suppress(KeyRepositoryError):  # promoted (and removed) meanwhile
            if self._staged.exists():
                found.update([self._staged.held()])
        return found

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
