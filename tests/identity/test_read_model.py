"""The identity read model's cache in an API process: its own identity writes are served at
once however long the refresh interval, and a commit that writes no identity data (an
accepted operation) costs no read of the revision."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from cascade.api.app import create_app
from cascade.services import Services, initialize
from tests.conftest import ADMIN_PASSWORD, login, make_settings


@pytest.fixture
def slow_refresh(tmp_path: Path) -> Iterator[Services]:
    """A Cascade whose API would not look for other processes' identity writes for a minute."""
    services = Services(make_settings(tmp_path / "data", identity_refresh_interval=60))
    initialize(services, ADMIN_PASSWORD)
    try:
        yield services
    finally:
        services.close()


def test_own_identity_writes_are_seen_at_once_and_other_commits_read_nothing(
    slow_refresh: Services,
) -> None:
    revision_reads: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM identity_revision" in statement:
            revision_reads.append(statement)

    event.listen(slow_refresh.db.engine, "before_cursor_execute", count)
    with TestClient(create_app(slow_refresh)) as client:
        admin = {"X-Auth-Token": login(client, "admin", ADMIN_PASSWORD, "admin")}
        revision_reads.clear()
        for _ in range(3):
            assert client.post("/v1/probes", headers=admin).status_code == 202
        assert client.get("/v1/operations", headers=admin).status_code == 200
        assert revision_reads == []

        user = {"user": {"name": "fresh", "password": "fresh-password-1"}}
        created = client.post("/identity/v3/users", json=user, headers=admin)
        assert created.status_code == 201, created.text
        login(client, "fresh", "fresh-password-1")  # served from the reloaded snapshot
        assert revision_reads
