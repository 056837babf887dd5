"""Set-based SQL for the fabric's large reads and writes, one statement per backend.

A million acknowledgements or a million-entry neighbour table moved row by row costs a
round trip into the database driver per row, and with SQLite each of those releases and
re-takes Python's GIL: in a process whose event loop is busy (a controller taking a flood
of acknowledgements) a thread doing that waits for the GIL at every row. So these go as
one JSON document each way: acknowledgements are passed as a JSON array and applied with
``UPDATE ... FROM json_each`` (SQLite) or ``json_to_recordset`` (PostgreSQL); a table is
read back as one aggregated JSON value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import TextClause, bindparam, func, select, text
from sqlalchemy.orm import Session

from cascade.db.models import FabricHost, FabricPort, UTCDateTime

_HOSTS = {
    "sqlite": """
        UPDATE fabric_hosts SET applied_revision = max(applied_revision, a.r), acked_at = :t
        FROM (SELECT json_extract(value, '$.h') AS h, json_extract(value, '$.r') AS r
              FROM json_each(:doc)) AS a
        WHERE fabric_hosts.name = a.h""",
    "postgresql": """
        UPDATE fabric_hosts SET applied_revision = greatest(applied_revision, a.r),
               acked_at = :t
        FROM json_to_recordset(CAST(:doc AS json)) AS a(h text, r integer)
        WHERE fabric_hosts.name = a.h""",
}
_MEMBERS = {
    "sqlite": """
        UPDATE fabric_memberships SET applied_revision = a.r
        FROM (SELECT json_extract(value, '$.h') AS h, json_extract(value, '$.n') AS n,
                     json_extract(value, '$.r') AS r FROM json_each(:doc)) AS a
        WHERE fabric_memberships.host = a.h AND fabric_memberships.network_id = a.n
          AND fabric_memberships.applied_revision < a.r""",
    "postgresql": """
        UPDATE fabric_memberships SET applied_revision = a.r
        FROM json_to_recordset(CAST(:doc AS json)) AS a(h text, n text, r integer)
        WHERE fabric_memberships.host = a.h AND fabric_memberships.network_id = a.n
          AND fabric_memberships.applied_revision < a.r""",
}


def _statement(sql: str) -> TextClause:
    return text(sql).bindparams(bindparam("t", type_=UTCDateTime()), bindparam("doc"))


def record_acks(
    session: Session, dialect: str, acks: dict[str, tuple[int, dict[str, int]]], now: datetime
) -> None:
    """Apply the latest acknowledgement of each host; revisions never move back."""
    hosts = [{"h": h, "r": rev} for h, (rev, _) in acks.items()]
    nets = [{"h": h, "n": n, "r": r} for h, (_, ns) in acks.items() for n, r in ns.items()]
    session.execute(_statement(_HOSTS[dialect]), {"t": now, "doc": orjson.dumps(hosts).decode()})
    if nets:
        session.execute(
            text(_MEMBERS[dialect]).bindparams(bindparam("doc")),
            {"doc": orjson.dumps(nets).decode()},
        )


def network_entries(session: Session, dialect: str, network_id: str) -> list[list[str]]:
    """Every port of a network as ``[port id, mac, ip, tunnel endpoint of its host]``."""
    columns = (FabricPort.id, FabricPort.mac, FabricPort.ip, FabricHost.tunnel_ip)
    if dialect == "postgresql":
        aggregate = func.json_agg(func.json_build_array(*columns))
    else:
        aggregate = func.json_group_array(func.json_array(*columns))
    value: Any = session.scalar(
        select(aggregate)
        .select_from(FabricPort)
        .join(FabricHost, FabricHost.name == FabricPort.host)
        .where(FabricPort.network_id == network_id)
    )
    if value is None:
        return []
    entries: list[list[str]] = orjson.loads(value) if isinstance(value, str | bytes) else value
    return entries
