"""Identity snapshots: everything a site needs to validate tokens and serve identity reads on
its own (identity rows and the Fernet key repository), exported at the master and installed
at a site. This is how a site's copy is first filled; following the master's change log
afterwards is replication's (issue 6).

The snapshot carries password hashes and key material: it travels only to an admin-authorised
endpoint of the site, never into a response or a log.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, insert, select, update

from cascade.db import Database
from cascade.db.models import Base, IdentityRevision, UTCDateTime
from cascade.identity.keys import KeyRepository
from cascade.identity.store import bump_revision

# Parents before children: inserted in this order, deleted in reverse.
TABLES = (
    "domains",
    "projects",
    "users",
    "roles",
    "role_assignments",
    "regions",
    "services",
    "endpoints",
    "revocation_events",
)


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


def _to_json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _from_json(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    return {
        name: datetime.fromisoformat(value)
        if isinstance(table.c[name].type, UTCDateTime) and value is not None
        else value
        for name, value in row.items()
    }


def export_snapshot(db: Database, keys: KeyRepository) -> dict[str, Any]:
    with db.session() as session:
        revision = session.scalar(select(IdentityRevision.revision)) or 0
        tables = {
            name: [
                {column: _to_json(value) for column, value in row._mapping.items()}
                for row in session.execute(select(_table(name)))
            ]
            for name in TABLES
        }
    encoded = {str(n): base64.b64encode(k).decode() for n, k in keys.read_all().items()}
    return {"revision": revision, "tables": tables, "keys": encoded}


def install_snapshot(db: Database, keys: KeyRepository, snapshot: dict[str, Any]) -> None:
    """Replace this site's identity data and keys by the snapshot's, in one transaction.
    Keys are installed first, so no token the snapshot's data accepts is refused."""
    keys.replace_all({int(n): base64.b64decode(k) for n, k in snapshot["keys"].items()})
    with db.session() as session:
        for name in reversed(TABLES):
            session.execute(delete(_table(name)))
        for name in TABLES:
            rows = [_from_json(_table(name), row) for row in snapshot["tables"].get(name, [])]
            if rows:
                session.execute(insert(_table(name)), rows)
        session.execute(update(IdentityRevision).values(revision=snapshot["revision"]))
        bump_revision(session)  # every process serving this copy reloads it
