"""A site's copy of the identity data: a snapshot exported at the master and installed at a
site, then the master's change log applied in order (``apply_changes``); the follower
(``cascade.identity.follower``) drives both.

The snapshot carries password hashes: it travels only to an admin-authorised endpoint, never
into a response body a non-admin sees, never into a log. Its keys are sealed for the one site
that receives them (``cascade.identity.sealing``).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, delete, insert, select, update
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.models import IdentityRevision, UTCDateTime
from cascade.identity import changelog
from cascade.identity.changelog import REPLICATING, TABLES, table, to_json
from cascade.identity.keys import KeyRepository, key_set_id
from cascade.identity.rotation import KeyPackage
from cascade.identity.sealing import NodeKey, SealError
from cascade.identity.store import bump_revision


def _from_json(target: Table, row: dict[str, Any]) -> dict[str, Any]:
    return {
        name: datetime.fromisoformat(value)
        if isinstance(target.c[name].type, UTCDateTime) and value is not None
        else value
        for name, value in row.items()
    }


def export_rows(db: Database) -> dict[str, Any]:
    """Every identity row, and ``seq``: the change log position they include."""
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
    return {"revision": revision, "seq": seq, "tables": tables}


def export_snapshot(db: Database, keys: KeyPackage) -> dict[str, Any]:
    """What a new site starts from: ``export_rows`` and the keys sealed for that site."""
    return {**export_rows(db), "keys": asdict(keys)}


def open_package(package: dict[str, Any], node: NodeKey, master: str) -> dict[int, bytes]:
    """The keys of a package sealed for this node by ``master`` (its node key); raises
    SealError when it does not open or is not the set it says."""
    if package.get("master") != master:
        raise SealError("the key package was sealed by another master than the one followed")
    keys = node.unseal(master, str(package.get("bundle", "")))
    if key_set_id(keys) != package.get("set"):
        raise SealError("the key package holds another key set than it names")
    return keys


def install_snapshot(
    db: Database, keys: KeyRepository, snapshot: dict[str, Any], opened: dict[int, bytes]
) -> None:
    """Replace this site's identity data and keys (``opened`` from the snapshot's package) by
    the snapshot's, in one transaction. Keys are installed first, so no token the snapshot's
    data accepts is refused."""
    keys.replace_all(opened)
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
