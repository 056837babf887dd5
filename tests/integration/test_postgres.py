"""The same state on PostgreSQL: migrations and bootstrap in process, then two real ``cascade
up`` processes over one PostgreSQL database (one data dir, so one set of keys, as two API
nodes behind a balancer share them) seeing each other's writes: a project made at one is
listed by the other, a token revoked at one is refused by the other."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from keystoneauth1 import session as ks_session

from cascade.cli.embedded import EmbeddedCascade
from cascade.db.migrate import current, head, upgrade
from cascade.identity.render import password_auth
from cascade.services import Services, initialize
from tests.conftest import ADMIN_PASSWORD, make_settings

pytestmark = pytest.mark.postgres
HTTP = ks_session.Session()


def eventually(check: Callable[[], bool], within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def call(node: EmbeddedCascade, method: str, path: str, **kwargs: Any) -> Any:
    return HTTP.request(node.url + path, method, raise_exc=False, **kwargs)


def test_migrations_and_bootstrap_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    settings = make_settings(tmp_path / "data", database_url=postgres_url)
    services = Services(settings)
    try:
        initialize(services, ADMIN_PASSWORD)
        initialize(services, ADMIN_PASSWORD)  # idempotent
        assert services.db.dialect == "postgresql"
        assert current(services.db) == head()
        assert upgrade(services.db) == head()
    finally:
        services.close()


def test_two_api_processes_on_one_postgres_database(tmp_path: Path, postgres_url: str) -> None:
    env = {"CASCADE_DATABASE_URL": postgres_url, "CASCADE_PASSWORD_HASH_ROUNDS": "4"}
    data_dir = tmp_path / "data"
    first = EmbeddedCascade(data_dir, ADMIN_PASSWORD, env=env, log_file=tmp_path / "a.log")
    second = EmbeddedCascade(data_dir, ADMIN_PASSWORD, env=env, log_file=tmp_path / "b.log")
    with first, second:
        assert first.pid != second.pid
        login = call(
            first,
            "POST",
            "/identity/v3/auth/tokens",
            json=password_auth("admin", ADMIN_PASSWORD, "admin"),
        )
        assert login.status_code == 201, login.text
        token = login.headers["X-Subject-Token"]
        headers = {"X-Auth-Token": token}
        for node in (first, second):
            assert call(node, "GET", "/v1/health").json()["database"] == "postgresql"
        assert call(second, "GET", "/v1/sites", headers=headers).status_code == 200

        body = {"project": {"name": "pg"}}
        created = call(first, "POST", "/identity/v3/projects", json=body, headers=headers)
        assert created.status_code == 201, created.text

        def listed_at_second() -> bool:
            answer = call(second, "GET", "/identity/v3/projects", headers=headers)
            return "pg" in {p["name"] for p in answer.json()["projects"]}

        assert eventually(listed_at_second), "the second process never saw the new project"

        revoke = call(
            first,
            "DELETE",
            "/identity/v3/auth/tokens",
            headers={**headers, "X-Subject-Token": token},
        )
        assert revoke.status_code == 204, revoke.text
        assert eventually(
            lambda: call(second, "GET", "/v1/sites", headers=headers).status_code == 401
        ), "the second process still accepts a token the first revoked"
