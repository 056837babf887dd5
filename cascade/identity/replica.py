"""A site's copy of the identity data: a snapshot exported at the master and installed at a
site, then the master's change log applied in order (``apply_changes``); the follower
(``cascade.identity.follower``) drives both.

The snapshot carries password hashes and key material: it travels only to an admin-authorised
endpoint, never into a response body a non-admin sees, never into a log.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, delete, insert, select, update
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.models import IdentityRevision, UTCDateTime
from cascade.identity import changelog
from cascade.identity.changelog import REPLICATING, TABLES, table, to_json
from cascade.identity.keys import KeyRepository
from cascade.identity.store import bump_revision


def _from_json(target: Table, row: dict[str, Any]) -> dict[str, Any]:
    return {
        name: datetime.fromisoformat(value)
        if isinstance(target.c[name].type, UTCDateTime) and value is not None
        else value
        for name, value in row.items()
    }


def export_snapshot(db: Database, keys: KeyRepository) -> dict[str, Any]:
    """Every identity row and key, and ``seq``: the change log position they include."""
    with db.session() as session:
        revision = session.scalar(select(IdentityRevision.revision)) or 0
        seq = changelog.head(session)
        tables = {
            name: [
                {column: to_json(value) for column, value in row._mapping.items()}
                for row in session.execute(select(table(name)))
            ]
            for name in TABLES
        }
    encoded = {str(n): base64.b64encode(k).decode() for n, k in keys.read_all().items()}
    return {"revision": revision, "seq": seq, "tables": tables, "keys": encoded}


def install_snapshot(db: Database, keys: KeyRepository, snapshot: dict[str, Any]) -> None:
    """Replace this site's identity data and keys by the snapshot's, in one transaction.
    Keys are installed first, so no token the snapshot's data accepts is refused."""
    keys.replace_all({int(n): base64.b64decode(k) for n, k in snapshot["keys"].items()})
    with db.session() as session:
        session.info[REPLICATING] = True
        for name in reversed(TABLES):
            session.execute(delete(table(name)))
        for name in TABLES:
            rows = [_from_json(table(name), row) for row in snapshot["tables"].get(name, [])]
            if rows:
                session.execute(insert(table(name)), rows)
        session.execute(update(IdentityRevision).values(revision=snapshot["revision"]))
        bump_revision(session)  # every process serving this copy reloads it


def apply_changes(session: Session, changes: list[dict[str, Any]]) -> None:
    """Apply change log entries, in order, in the caller's transaction: a row is updated in
    place or inserted (never deleted and re-inserted, which rows referring to it would
    forbid), a deletion deletes by key. Applying an entry twice leaves the same state."""
    session.info[REPLICATING] = True
    connection = session.connection()
    for change in changes:
        target = table(change["table"])
        match = and_(*(target.c[name] == value for name, value in change["key"].items()))
        if change["row"] is None:
            connection.execute(delete(target).where(match))
            continue
        row = _from_json(target, change["row"])
        if connection.execute(update(target).where(match).values(row)).rowcount == 0:
            connection.execute(insert(target), [row])
    if changes:
        bump_revision(session)
