"""Migration 0008 (remote ports, port security) up and down, on SQLite and PostgreSQL: local
ports survive both ways, remote ports (no host) go on the way down, where a host is required
again."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from cascade.db import Database

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LOCAL = {"id": "p1", "network_id": "n1", "host": "h1", "mac": "02:00:00:00:00:01"}


def migrate(db: Database, direction: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", "cascade.db:migrations")
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)


def table(db: Database, name: str) -> sa.Table:
    """The table as the database has it now (reflected: the models say the newest schema)."""
    return sa.Table(name, sa.MetaData(), autoload_with=db.engine)


def insert(db: Database, table_name: str, **row: Any) -> None:
    with db.engine.begin() as connection:
        connection.execute(sa.insert(table(db, table_name)), row)


def insert_port(db: Database, **row: Any) -> None:
    insert(db, "fabric_ports", security_rules=[], created_at=NOW, **row)


def ports(db: Database, *columns: str) -> list[tuple[Any, ...]]:
    ports_table = table(db, "fabric_ports")
    query = sa.select(*(ports_table.c[c] for c in columns)).order_by(ports_table.c.id)
    with db.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query)]


def check_up_and_down(db: Database) -> None:
    migrate(db, "upgrade", "0007")
    insert(db, "fabric_hosts", name="h1", tunnel_ip="10.0.0.1", revision=1, applied_revision=0,
           created_at=NOW)  # fmt: skip
    insert(db, "fabric_networks", id="n1", vni=100, cidr="192.168.0.0/24", revision=1,
           created_at=NOW)  # fmt: skip
    insert_port(db, **LOCAL, ip="192.168.0.1")
    migrate(db, "upgrade", "0008")
    assert table(db, "fabric_ports").c.host.nullable
    assert ports(db, "id", "host", "vtep", "port_security") == [("p1", "h1", None, False)]
    insert_port(db, id="r1", network_id="n1", host=None, vtep="172.16.0.9",
                mac="02:00:00:00:00:02", ip="192.168.0.2")  # fmt: skip
    with pytest.raises(sa.exc.IntegrityError):  # (network, mac) is still unique
        insert_port(db, **{**LOCAL, "id": "p2"}, ip="192.168.0.3")
    migrate(db, "downgrade", "0007")
    columns = table(db, "fabric_ports").c
    assert not columns.host.nullable
    assert "vtep" not in columns
    assert "port_security" not in columns
    assert ports(db, "id", "host") == [("p1", "h1")]
    migrate(db, "upgrade", "0008")
    assert ports(db, "id", "port_security") == [("p1", False)]


def test_migration_0008_on_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'fabric.db'}")
    try:
        check_up_and_down(db)
    finally:
        db.dispose()


@pytest.mark.postgres
def test_migration_0008_on_postgres(postgres_url: str) -> None:
    db = Database(postgres_url)
    try:
        check_up_and_down(db)
    finally:
        db.dispose()
