"""Fernet key distribution and rotation across sites: the master's side.

The master's key repository is Keystone's layout (``cascade.identity.keys``): key 0 is staged,
the highest number is the primary. Every site already holds the staged key, so the master can
promote it without any site refusing the tokens it then mints. A rotation therefore:

1. **stages** the next key set: what ``keystone-manage fernet_rotate`` would make of the
   current one (the staged key becomes the primary, a new key is staged, the oldest
   secondary goes). It is kept aside, 0600, in ``fernet-keys.next``; a rotation that would
   drop a key which may still have unexpired tokens is refused;
2. **distributes** it: every site's follower sees that the set it should hold changed, fetches
   it sealed for itself (``cascade.identity.sealing``) and installs it; on each poll of the
   change log it says which set it holds (by id) and *proves* it: a MAC keyed by the set's
   keys over a challenge the master issued it (``cascade.identity.possession``). Only a
   proven claim is recorded (``IdentityReplica.key_set``); the id alone, which any admin
   token can read and send, counts for nothing;
3. **promotes** it at the master only once every registered site has proven it holds it. A
   site that has not blocks promotion (the staged set stays, the command says which site and
   can be run again); ``force`` promotes anyway and says which tokens that site then refuses.

Imports ``cascade.db`` and the identity modules only.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.models import IdentityKeySet, IdentityReplica
from cascade.errors import Conflict, NotFound
from cascade.identity.keys import STAGED, KeyRepository, fingerprint, key_set_id, rotated
from cascade.identity.sealing import NodeKey


@dataclass(frozen=True)
class KeyPackage:
    """What a site receives: the id of the set, the master's node key, the sealed keys."""

    set: str
    master: str
    bundle: str
    challenge: str = ""  # to prove holding the set on the next poll (cascade.identity.possession)


def wanted_keys(keys: KeyRepository, staged: KeyRepository) -> dict[int, bytes]:
    """The key set every site should hold now: the staged set during a rotation, else the
    master's own."""
    return staged.read_all() if staged.exists() else keys.read_all()


def wanted_key_set(keys: KeyRepository, staged: KeyRepository) -> str:
    """The id of ``wanted_keys``: cheap to ask often (re-read only when a repository moved)."""
    return staged.set_id() if staged.exists() else keys.set_id()


def replica_key(db: Database, replica: str) -> str:
    """The node key a registered replica gave at bootstrap."""
    with db.session() as session:
        found = session.get(IdentityReplica, replica)
        if found is None or not found.public_key:
            raise NotFound(f"No replica {replica!r} with a node key is registered.")
        return found.public_key


def seal_wanted(
    db: Database, keys: KeyRepository, staged: KeyRepository, node: NodeKey, recipient: str
) -> KeyPackage:
    """The key set sites should hold, sealed for the node whose public key is ``recipient``."""
    wanted = wanted_keys(keys, staged)
    with db.session() as session:
        record_key_set(session, wanted)
    return KeyPackage(key_set_id(wanted), node.public, node.seal(recipient, wanted))


def register(session: Session, replica: str, public_key: str, seq: int) -> bool:
    """Record (or renew) a replica and its node key as it bootstraps; True when a replica of
    that name was registered with another node key. Whatever it had proven is forgotten."""
    found = session.get(IdentityReplica, replica)
    if found is None:
        found = IdentityReplica(name=replica, seq=seq, seen_at=datetime.now(UTC))
        session.add(found)
    renewed = found.public_key is not None and found.public_key != public_key
    found.public_key, found.key_set, found.seq = public_key, None, seq
    return renewed


def record_key_set(session: Session, keys: dict[int, bytes]) -> str:
    """Remember a key set's fingerprints under its id (idempotent); return the id."""
    set_id = key_set_id(keys)
    if session.get(IdentityKeySet, set_id) is None:
        prints = {str(number): fingerprint(key) for number, key in keys.items()}
        session.add(IdentityKeySet(id=set_id, fingerprints=prints))
    return set_id


@dataclass(frozen=True)
class SiteKeys:
    name: str
    key_set: str | None  # the set it last proved holding
    seen_at: datetime
    refuses: str = ""  # after a forced promotion: which tokens it refuses until it catches up


@dataclass
class RotationReport:
    target: str  # id of the key set being rotated to
    primary: int  # the key number that is (or would be) the new primary
    sites: int  # sites registered
    holding: list[str] = field(default_factory=list)  # sites holding the target
    missing: list[SiteKeys] = field(default_factory=list)  # sites that did not (yet)
    promoted: bool = False
    forced: bool = False


class KeyRotation:
    def __init__(
        self,
        db: Database,
        keys: KeyRepository,
        staged: KeyRepository,
        max_active_keys: int,
        token_lifetime: timedelta,
    ) -> None:
        self._db = db
        self._keys = keys
        self._staged = staged
        self._max_active = max_active_keys
        self._lifetime = token_lifetime

    def rotate(
        self,
        timeout: float,
        force: bool = False,
        progress: Callable[[RotationReport], None] | None = None,
        poll: float = 0.1,
    ) -> RotationReport:
        """Stage (or resume staging) the next key set, wait up to ``timeout`` seconds for
        every site to hold it, then promote it; without ``force`` a missing site leaves the
        set staged and the report unpromoted."""
        with self._exclusive():
            target = self.stage()
            deadline = time.monotonic() + timeout
            while True:
                report = self.report(target)
                if progress is not None:
                    progress(report)
                if not report.missing or time.monotonic() >= deadline:
                    break
                time.sleep(poll)
            if report.missing and not force:
                return report
            self._promote(target, report)
            return report

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        lock = self._staged.path.with_name(".rotation.lock")
        with open(lock, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Conflict("Another key rotation is running.") from None
            yield

    def stage(self) -> dict[int, bytes]:
        """The staged key set, made now unless a rotation already staged one."""
        if self._staged.exists():
            return self._staged.read_all()
        current = self._keys.read_all()
        target = rotated(current, self._max_active)
        self._refuse_early_drop(current, target)
        with self._db.session() as session:
            record_key_set(session, current)
            record_key_set(session, target)
        building = KeyRepository(self._staged.path.with_name(".fernet-keys.next.tmp"))
        shutil.rmtree(building.path, ignore_errors=True)
        building.replace_all(target)
        os.replace(building.path, self._staged.path)  # all of it staged, or none
        return target

    def report(self, target: dict[int, bytes]) -> RotationReport:
        target_id = key_set_id(target)
        report = RotationReport(target=target_id, primary=max(target), sites=0)
        with self._db.session() as session:
            for replica in session.scalars(select(IdentityReplica).order_by(IdentityReplica.name)):
                report.sites += 1
                if replica.key_set == target_id:
                    report.holding.append(replica.name)
                else:
                    refuses = _refused_by(session, replica.key_set, target)
                    report.missing.append(
                        SiteKeys(replica.name, replica.key_set, replica.seen_at, refuses)
                    )
        return report

    def _promote(self, target: dict[int, bytes], report: RotationReport) -> None:
        self._keys.replace_all(target)
        self._keys.stamp(max(target))
        # Out of the way in one rename before its files go: a reader (the sites' wanted set)
        # never sees a staged set with some of its keys removed.
        promoted = self._staged.path.with_name(".fernet-keys.promoted")
        shutil.rmtree(promoted, ignore_errors=True)
        os.replace(self._staged.path, promoted)
        shutil.rmtree(promoted)
        report.promoted, report.forced = True, bool(report.missing)

    def _refuse_early_drop(self, current: dict[int, bytes], target: dict[int, bytes]) -> None:
        """A dropped key stops being trusted everywhere; refuse while tokens it encrypted
        may be unexpired: it was primary until its successor was promoted."""
        for dropped in sorted(set(current) - set(target) - {STAGED}):
            successor = min(n for n in current if n > dropped)
            promoted = self._keys.primary_since(successor) or time.time()
            safe_at = promoted + self._lifetime.total_seconds()
            if time.time() < safe_at:
                when = datetime.fromtimestamp(safe_at, UTC).isoformat(timespec="seconds")
                raise Conflict(
                    f"Rotating now would drop key {dropped}, whose tokens stay valid until "
                    f"{when}. Rotate after that, or keep more keys "
                    f"(identity_max_active_keys, now {self._max_active})."
                )


def _refused_by(session: Session, held: str | None, target: dict[int, bytes]) -> str:
    """What a site holding key set ``held`` refuses once ``target`` is promoted."""
    primary = max(target)
    known = session.get(IdentityKeySet, held) if held else None
    if known is not None and fingerprint(target[primary]) in known.fingerprints.values():
        return (
            "nothing: it already holds the new primary key (staged there); it lacks the new "
            "staged key, so the next rotation waits for it"
        )
    return (
        f"every token encrypted with key {primary}, i.e. issued from the promotion on at the "
        "master and at sites holding the new set, until it catches up; tokens issued before "
        "stay valid there"
    )


def due_in(keys: KeyRepository, every: float) -> float:
    """Seconds until the primary key is ``every`` seconds old (0 when due): a rotation is due
    that long after the primary's promotion, so restarts do not rotate more often."""
    promoted = keys.primary_since(max(keys.read_all())) or time.time()
    return max(0.0, promoted + every - time.time())
