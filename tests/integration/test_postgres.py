"""The same state on PostgreSQL: migrations, bootstrap, tokens, and two API processes over one
database seeing each other's writes at their next request."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cascade.api.app import create_app
from cascade.db.migrate import current, head, upgrade
from cascade.services import Services, initialize
from tests.conftest import ADMIN_PASSWORD, login, make_settings

pytestmark = pytest.mark.postgres


def eventually(check: Callable[[], bool], within: float = 1.0) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_postgres_end_to_end(tmp_path: Path, postgres_url: str) -> None:
    settings = make_settings(tmp_path / "data", database_url=postgres_url)
    first, second = Services(settings), Services(settings)
    try:
        initialize(first, ADMIN_PASSWORD)
        initialize(first, ADMIN_PASSWORD)  # idempotent
        assert first.db.dialect == "postgresql"
        assert current(first.db) == head()
        assert upgrade(first.db) == head()
        with TestClient(create_app(first)) as a, TestClient(create_app(second)) as b:
            token = login(a, "admin", ADMIN_PASSWORD, "admin")
            headers = {"X-Auth-Token": token}
            assert b.get("/v1/health").json()["database"] == "postgresql"
            assert b.get("/v1/sites", headers=headers).status_code == 200
            created = a.post(
                "/identity/v3/projects", json={"project": {"name": "pg"}}, headers=headers
            )
            assert created.status_code == 201
            names = {
                p["name"]
                for p in b.get("/identity/v3/projects", headers=headers).json()["projects"]
            }
            assert "pg" in names
            revoke = a.delete(
                "/identity/v3/auth/tokens", headers={**headers, "X-Subject-Token": token}
            )
            assert revoke.status_code == 204
            assert b.get("/v1/sites", headers=headers).status_code == 401
    finally:
        first.close()
        second.close()
