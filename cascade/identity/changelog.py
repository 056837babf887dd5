"""The identity change log: every row written to or deleted from an identity table, with a
sequence number in commit order. Replicas follow it (``cascade.identity.follower``).

Capture is attached to a database's sessions (``attach``), so every writer (the identity
store, bootstrap, the site registry's catalog entries) is logged without calling anything:
rows added, changed or deleted through the ORM are logged after each flush, and bulk
``DELETE`` statements run through a session log the keys they are about to delete. A
session marked ``session.info[REPLICATING]`` (a replica installing what it received) is
not logged.

Commit order: before logging, the transaction updates the identity revision row, which
every identity write transaction also updates, so on PostgreSQL a second writer waits for
the first to commit before it can draw a sequence number; a follower that has seen
sequence n can never later find a smaller one committed. SQLite serialises writers anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, insert, inspect, select, update
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from cascade.db import Database, delegation_models, domain_config_models  # noqa: F401 - logged
from cascade.db.models import Base, IdentityChange, IdentityReplica, IdentityRevision, utcnow
from cascade.errors import NotFound

# Parents before children: inserted in this order, deleted in reverse.
TABLES = (
    "domains",
    "projects",
    "users",
    "groups",
    "group_members",
    "roles",
    "implied_roles",
    "role_assignments",
    "group_role_assignments",
    "regions",
    "services",
    "endpoints",
    "revocation_events",
    "policies",
    "oauth_consumers",
    "inherited_role_assignments",
    "credentials",
    "endpoint_groups",
    "project_endpoints",
    "project_endpoint_groups",
    "access_rules",
    "application_credentials",
    "trusts",
    "domain_config_options",
)
REPLICATING = "cascade.identity.replicating"

RowChange = tuple[str, dict[str, Any], dict[str, Any] | None]  # table, key, row (None: deleted)


def table(name: str) -> Table:
    return Base.metadata.tables[name]


def to_json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def row_of(obj: Base) -> dict[str, Any]:
    mapper = inspect(obj).mapper
    return {attr.columns[0].name: to_json(getattr(obj, attr.key)) for attr in mapper.column_attrs}


def key_of(name: str, row: dict[str, Any]) -> dict[str, Any]:
    return {column.name: row[column.name] for column in table(name).primary_key.columns}


def attach(db: Database) -> None:
    db.listen("after_flush", _after_flush)
    db.listen("do_orm_execute", _before_bulk_delete)


def _logged(session: Session) -> bool:
    return not session.info.get(REPLICATING, False)


def _after_flush(session: Session, _context: UOWTransaction) -> None:
    if not _logged(session):
        return
    written: list[RowChange] = []
    for obj in (*session.new, *session.dirty):
        name = obj.__table__.name
        if name in TABLES and (obj in session.new or session.is_modified(obj)):
            row = row_of(obj)
            written.append((name, key_of(name, row), row))
    deleted: list[RowChange] = []
    for obj in session.deleted:
        name = obj.__table__.name
        if name in TABLES:
            deleted.append((name, key_of(name, row_of(obj)), None))
    # A flush's objects come unordered: log parents before children, and deletions
    # children first, so a replica applying them in order never breaks a reference.
    written.sort(key=lambda change: TABLES.index(change[0]))
    deleted.sort(key=lambda change: -TABLES.index(change[0]))
    _log(session, written + deleted)


def _before_bulk_delete(state: ORMExecuteState) -> None:
    if not state.is_delete or not _logged(state.session):
        return
    target: Table = state.statement.table  # type: ignore[attr-defined]
    if target.name not in TABLES:
        return
    keys = target.primary_key.columns
    where = state.statement.whereclause  # type: ignore[attr-defined]
    query = select(*keys) if where is None else select(*keys).where(where)
    found = state.session.connection().execute(query).mappings().all()
    _log(state.session, [(target.name, {c.name: r[c.name] for c in keys}, None) for r in found])


def _log(session: Session, changes: list[RowChange]) -> None:
    if not changes:
        return
    connection = session.connection()
    # Take the identity revision row's lock before drawing sequence numbers (module doc).
    connection.execute(update(IdentityRevision).values(revision=IdentityRevision.revision))
    now = utcnow()
    connection.execute(
        insert(IdentityChange),
        [{"table": n, "key": k, "row": r, "changed_at": now} for n, k, r in changes],
    )


# A following replica polls at least once per long poll (at most 60 s, 10 s by default) plus
# its round trip: one not seen for longer than this has stopped following.
SILENT_AFTER_S = 75.0


@dataclass(frozen=True)
class ReplicaLag:
    name: str
    seq: int  # the last change it has applied
    behind: int  # changes it has not applied yet
    # How stale its copy may be, in seconds: the age of the oldest change it has not applied
    # (0 when up to date), and never less than its silence once silent (unknown since then).
    lag_s: float
    seen_at: datetime  # its latest poll
    seen_s: float  # seconds since then
    silent: bool  # not seen for SILENT_AFTER_S: no longer following (down, cut off, stopped)
    key_set: str | None  # id of the Fernet key set it last proved it holds


def note_replica(session: Session, name: str, seq: int, key_set: str | None) -> None:
    """Record a registered replica's position as it polls (``seq``: the last change it
    applied) and, when given, the key set it has just proven it holds."""
    replica = session.get(IdentityReplica, name)
    if replica is None:
        raise NotFound(
            f"Replica {name!r} is not registered at this master (forgotten, or never "
            "bootstrapped): it no longer follows. Start it again from an empty data dir."
        )
    replica.seq, replica.seen_at = seq, utcnow()
    if key_set is not None:
        replica.key_set = key_set


def forget_replica(session: Session, name: str) -> None:
    replica = session.get(IdentityReplica, name)
    if replica is None:
        raise NotFound(f"No replica named {name!r} follows this master.")
    session.delete(replica)


def replicas(session: Session, now: datetime | None = None) -> list[ReplicaLag]:
    """Every registered replica, with how far behind the log it is (in changes and in
    seconds), how long ago it last polled and whether it has gone silent."""
    now = now or utcnow()
    newer = IdentityChange.seq > IdentityReplica.seq
    behind = select(func.count()).where(newer).correlate(IdentityReplica).scalar_subquery()
    oldest = (
        select(func.min(IdentityChange.changed_at))
        .where(newer)
        .correlate(IdentityReplica)
        .scalar_subquery()
    )
    found = []
    rows = session.execute(  # one statement for every replica, however many there are
        select(IdentityReplica, behind, oldest).order_by(IdentityReplica.name)
    )
    for replica, pending, oldest_at in rows:
        seen_s = max(0.0, (now - replica.seen_at).total_seconds())
        silent = seen_s > SILENT_AFTER_S
        lag = max(0.0, (now - oldest_at).total_seconds()) if oldest_at is not None else 0.0
        if silent:
            lag = max(lag, seen_s)
        found.append(
            ReplicaLag(
                replica.name,
                replica.seq,
                pending or 0,
                lag,
                replica.seen_at,
                seen_s,
                silent,
                replica.key_set,
            )
        )
    return found


def head(session: Session) -> int:
    """The last sequence number written (0 when the log is empty)."""
    return int(session.scalar(select(IdentityChange.seq).order_by(IdentityChange.seq.desc())) or 0)
