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
from sqlalchemy import Connection, TextClause, bindparam, case, func, select, text
from sqlalchemy.orm import Session

from cascade.db.models import FabricHost, FabricPort, UTCDateTime
from cascade.fabric.messages import Ack

# A host's acknowledgement is taken only if it is newer than the one recorded (``ack_seq``,
# the agent's clock), with whether its dataplane enforces security rules; its networks then
# replace the host's recorded ones, and networks the host is on but did not list (it dropped
# one and is fetching it again) fall back to 0.
_HOSTS = {
    "sqlite": """
        UPDATE fabric_hosts
        SET applied_revision = a.r, ack_seq = a.s, acked_at = :t, rules_enforced = a.e
        FROM (SELECT json_extract(value, '$.h') AS h, json_extract(value, '$.r') AS r,
                     json_extract(value, '$.s') AS s, json_extract(value, '$.e') AS e
              FROM json_each(:doc)) AS a
        WHERE fabric_hosts.name = a.h
          AND (fabric_hosts.ack_seq IS NULL OR fabric_hosts.ack_seq < a.s)""",
    "postgresql": """
        UPDATE fabric_hosts
        SET applied_revision = a.r, ack_seq = a.s, acked_at = :t, rules_enforced = a.e
        FROM json_to_recordset(CAST(:doc AS json)) AS a(h text, r integer, s bigint, e boolean)
        WHERE fabric_hosts.name = a.h
          AND (fabric_hosts.ack_seq IS NULL OR fabric_hosts.ack_seq < a.s)""",
}
_MEMBERS_RESET = {
    "sqlite": """
        UPDATE fabric_memberships SET applied_revision = 0
        FROM (SELECT json_extract(value, '$.h') AS h, json_extract(value, '$.s') AS s
              FROM json_each(:doc)) AS a
        JOIN fabric_hosts ON fabric_hosts.name = a.h AND fabric_hosts.ack_seq = a.s
        WHERE fabric_memberships.host = a.h""",
    "postgresql": """
        UPDATE fabric_memberships SET applied_revision = 0
        FROM json_to_recordset(CAST(:doc AS json)) AS a(h text, s bigint)
        JOIN fabric_hosts ON fabric_hosts.name = a.h AND fabric_hosts.ack_seq = a.s
        WHERE fabric_memberships.host = a.h""",
}
_MEMBERS = {
    "sqlite": """
        UPDATE fabric_memberships SET applied_revision = a.r
        FROM (SELECT json_extract(value, '$.h') AS h, json_extract(value, '$.n') AS n,
                     json_extract(value, '$.r') AS r, json_extract(value, '$.s') AS s
              FROM json_each(:doc)) AS a
        JOIN fabric_hosts ON fabric_hosts.name = a.h AND fabric_hosts.ack_seq = a.s
        WHERE fabric_memberships.host = a.h AND fabric_memberships.network_id = a.n""",
    "postgresql": """
        UPDATE fabric_memberships SET applied_revision = a.r
        FROM json_to_recordset(CAST(:doc AS json)) AS a(h text, n text, r integer, s bigint)
        JOIN fabric_hosts ON fabric_hosts.name = a.h AND fabric_hosts.ack_seq = a.s
        WHERE fabric_memberships.host = a.h AND fabric_memberships.network_id = a.n""",
}


def record_acks(session: Session, dialect: str, acks: dict[str, Ack], now: datetime) -> None:
    """Record each host's acknowledgement unless a newer one is already recorded."""
    hosts = [
        {"h": h, "s": a.sequence, "r": a.revision, "e": a.enforces_rules} for h, a in acks.items()
    ]
    nets = [
        {"h": h, "s": a.sequence, "n": n, "r": r}
        for h, a in acks.items()
        for n, r in a.networks.items()
    ]
    doc = orjson.dumps(hosts).decode()
    session.execute(_with_doc(_HOSTS[dialect], time=True), {"t": now, "doc": doc})
    session.execute(_with_doc(_MEMBERS_RESET[dialect]), {"doc": doc})
    if nets:
        session.execute(_with_doc(_MEMBERS[dialect]), {"doc": orjson.dumps(nets).decode()})


def _with_doc(sql: str, time: bool = False) -> TextClause:
    statement = text(sql).bindparams(bindparam("doc"))
    return statement.bindparams(bindparam("t", type_=UTCDateTime())) if time else statement


# A remote port has no host here: its own vtep is where it is. A port's allowed addresses
# (a JSON list, NULL when none) follow as a fifth element only when it has any.
_VTEP = func.coalesce(FabricPort.vtep, FabricHost.tunnel_ip)
_COLUMNS = (FabricPort.id, FabricPort.mac, FabricPort.ip, _VTEP)
_PAIRS = FabricPort.allowed_ips
_ENTRY = {
    "postgresql": case(
        (_PAIRS.is_(None), func.json_build_array(*_COLUMNS)),
        else_=func.json_build_array(*_COLUMNS, _PAIRS),
    ),
    "sqlite": case(
        (_PAIRS.is_(None), func.json_array(*_COLUMNS)),
        else_=func.json_array(*_COLUMNS, func.json(_PAIRS)),
    ),
}
_TABLE = {
    dialect: select(aggregate(_ENTRY[dialect]))
    .select_from(FabricPort)
    .outerjoin(FabricHost, FabricHost.name == FabricPort.host)
    .where(FabricPort.network_id == bindparam("network"))
    for dialect, aggregate in (("postgresql", func.json_agg), ("sqlite", func.json_group_array))
}


def network_entries(
    session: Session | Connection, dialect: str, network_id: str
) -> list[list[Any]]:
    """Every port of a network as ``[port id, mac, ip, vtep]``, the tunnel endpoint of the
    port's host or a remote port's own, with ``[allowed ips]`` after when it has any."""
    value: Any = session.scalar(_TABLE[dialect], {"network": network_id})
    if value is None:
        return []
    entries: list[list[Any]] = orjson.loads(value) if isinstance(value, str | bytes) else value
    return entries
