"""Pooled PostgreSQL connections (``cascade.db.backends.PostgresBackend``): a connection that
sat unused in the pool is pinged before use and replaced when the server has dropped it (here
by ``pg_terminate_backend``, as a server restart or an idle timeout would), so the session
using it never sees the loss; one back from use a moment ago is used without a ping."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import text

from cascade.db import Database
from cascade.db.backends import PING_AFTER_IDLE_S

pytestmark = pytest.mark.postgres


def backend_pid(db: Database) -> int:
    with db.session() as session:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_an_idle_connection_the_server_dropped_is_replaced_unseen(postgres_url: str) -> None:
    db = Database(postgres_url)
    pings: list[float] = []
    ping = db.engine.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pings.append(time.monotonic())
        return ping(dbapi_connection)

    db.engine.dialect.do_ping = counted  # type: ignore[method-assign]
    try:
        first = backend_pid(db)
        assert backend_pid(db) == first  # back from use a moment ago: the same, no ping
        assert pings == []
        admin = postgres_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (first,))
        time.sleep(PING_AFTER_IDLE_S + 0.2)
        replaced = backend_pid(db)  # the ping finds it gone: a new connection, no error
        assert replaced != first
        assert len(pings) == 1
    finally:
        db.dispose()
