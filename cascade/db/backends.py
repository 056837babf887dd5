"""Database backends, side by side: SQLite (embedded default) and PostgreSQL (production).

Each backend says which engine options it needs and prepares new connections.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from cascade.errors import CascadeError

PING_AFTER_IDLE_S = 1.0  # a pooled connection idle longer is pinged before use
RETURNED_AT = "cascade_returned_at"  # in a pool record's ``info``: when it was last checked in


class Backend(Protocol):
    name: str

    def engine_options(self) -> dict[str, Any]: ...

    def prepare(self, engine: Engine) -> None: ...


class SQLiteBackend:
    """One file per database, WAL so readers never block the writer, foreign keys on."""

    name = "sqlite"

    def engine_options(self) -> dict[str, Any]:
        return {"connect_args": {"check_same_thread": False, "timeout": 30}}

    def prepare(self, engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()


class PostgresBackend:
    """A pooled connection per API thread. One that sat unused in the pool for
    ``PING_AFTER_IDLE_S`` is pinged before use and replaced if the server or the link has
    dropped it; one back from use within that time is not (SQLAlchemy's ``pool_pre_ping``
    pings at every checkout: a round trip per transaction, about a fifth of a worker's time
    per operation). A connection dropped less than that after its last use fails its next
    statement, which invalidates the whole pool, as a server lost mid-statement does."""

    name = "postgresql"

    def engine_options(self) -> dict[str, Any]:
        return {"pool_size": 10, "max_overflow": 20}

    def prepare(self, engine: Engine) -> None:
        @event.listens_for(engine, "checkin")
        def _returned(_dbapi_connection: Any, record: Any) -> None:
            record.info[RETURNED_AT] = time.monotonic()

        @event.listens_for(engine, "checkout")
        def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
            returned = record.info.get(RETURNED_AT)
            if returned is None or time.monotonic() - returned < PING_AFTER_IDLE_S:
                return  # new, or back from use a moment ago
            try:
                engine.dialect.do_ping(dbapi_connection)
            except engine.dialect.loaded_dbapi.Error as error:
                raise DisconnectionError(str(error)) from error  # the pool connects anew


def backend_for(url: str) -> Backend:
    dialect = make_url(url).get_backend_name()
    if dialect == "sqlite":
        return SQLiteBackend()
    if dialect == "postgresql":
        return PostgresBackend()
    raise CascadeError(f"unsupported database {dialect!r}: use sqlite or postgresql")
