"""Database backends, side by side: SQLite (embedded default) and PostgreSQL (production).

Each backend says which engine options it needs and prepares new connections.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

from cascade.errors import CascadeError


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
    """A pooled connection per API thread; stale connections are detected before use."""

    name = "postgresql"

    def engine_options(self) -> dict[str, Any]:
        return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 20}

    def prepare(self, engine: Engine) -> None:
        return None


def backend_for(url: str) -> Backend:
    dialect = make_url(url).get_backend_name()
    if dialect == "sqlite":
        return SQLiteBackend()
    if dialect == "postgresql":
        return PostgresBackend()
    raise CascadeError(f"unsupported database {dialect!r}: use sqlite or postgresql")
