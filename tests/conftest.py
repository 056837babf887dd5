"""Shared fixtures: an initialised Cascade per test (SQLite in tmp_path), an in-process API
client, admin and tenant tokens, and the real-service gates (PostgreSQL, NATS)."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _pytest.nodeid import coerce_node_id
from fastapi.testclient import TestClient

from cascade.api.app import create_app
from cascade.config import Settings
from cascade.db import Database
from cascade.identity.render import password_auth
from cascade.services import Services, initialize

ADMIN_PASSWORD = "admin-secret-password"
IN_CI = os.environ.get("CI", "").lower() == "true"


def service_available(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, port: int) -> None:
    """In CI a missing service fails the test; elsewhere the test skips with one line."""
    if service_available(port):
        return
    if IN_CI:
        pytest.fail(f"{name} is not answering on 127.0.0.1:{port} (CI=true requires it)")
    pytest.skip(f"{name} not running on 127.0.0.1:{port}; set CI=true to require it")


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    return Settings(data_dir=data_dir, password_hash_rounds=4, **overrides)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture(scope="session")
def initialised_template(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One data dir initialised per test process (migrations, keys, admin, queues): a test's
    own Cascade starts as a copy of it instead of running ``initialize`` again."""
    settings = make_settings(tmp_path_factory.mktemp("template") / "data")
    template = Services(settings)
    try:
        initialize(template, ADMIN_PASSWORD)
    finally:
        template.close()
    return settings


def _same_but_data_dir(settings: Settings, template: Settings) -> bool:
    return settings.model_dump(exclude={"data_dir"}) == template.model_dump(exclude={"data_dir"})


@pytest.fixture
def services(settings: Settings, initialised_template: Settings) -> Iterator[Services]:
    """An initialised Cascade on ``settings``: a copy of the template data dir when only the
    data dir differs (SQLite, default settings), else ``initialize`` run for it."""
    copied = _same_but_data_dir(settings, initialised_template)
    if copied:
        shutil.copytree(initialised_template.data_dir, settings.data_dir)
    svc = Services(settings)
    if not copied:
        initialize(svc, ADMIN_PASSWORD)
    yield svc
    svc.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An initialised Cascade's database on SQLite, and again on a fresh PostgreSQL one, for
    tests of the database alone (no app, no site)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    services = Services(make_settings(tmp_path / "data", database_url=url))
    initialize(services, ADMIN_PASSWORD)
    try:
        yield services.db
    finally:
        services.close()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as test_client:
        yield test_client


def login(client: TestClient, user: str, password: str, project: str | None = None) -> str:
    response = client.post("/identity/v3/auth/tokens", json=password_auth(user, password, project))
    assert response.status_code == 201, response.text
    return str(response.headers["X-Subject-Token"])


@pytest.fixture
def admin_token(client: TestClient) -> str:
    return login(client, "admin", ADMIN_PASSWORD, "admin")


@dataclass
class Tenant:
    project_id: str
    user_id: str
    token: str
    name: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self.token}


def make_tenant(client: TestClient, admin_token: str, role: str = "member") -> Tenant:
    """A new project and a user holding ``role`` on it, logged in to that project."""
    headers = {"X-Auth-Token": admin_token}
    name = f"t{uuid.uuid4().hex[:8]}"
    project = client.post(
        "/identity/v3/projects", json={"project": {"name": name}}, headers=headers
    ).json()["project"]
    user = client.post(
        "/identity/v3/users",
        headers=headers,
        json={"user": {"name": f"{name}-{role}", "password": "pw-" + name}},
    ).json()["user"]
    role_id = client.get("/identity/v3/roles", params={"name": role}, headers=headers).json()[
        "roles"
    ][0]["id"]
    granted = client.put(
        f"/identity/v3/projects/{project['id']}/users/{user['id']}/roles/{role_id}", headers=headers
    )
    assert granted.status_code == 204, granted.text
    token = login(client, f"{name}-{role}", "pw-" + name, name)
    return Tenant(project["id"], user["id"], token, name)


def hidden_from(
    client: TestClient, tenant: Tenant, url: str, what: str, method: str = "GET"
) -> None:
    """``tenant`` (of another project) gets the resource at ``url`` as not found, never as
    forbidden, with Cascade's message naming it: "Could not find {what}: {its id}."."""
    response = client.request(method, url, headers=tenant.headers)
    assert response.status_code == 404, (method, url, response.text)
    row_id = url.rsplit("/", 1)[1]
    assert response.json()["error"]["message"] == f"Could not find {what}: {row_id}."


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    require_service("PostgreSQL", 5432)
    import psycopg

    name = f"cascade_test_{uuid.uuid4().hex[:12]}"
    admin = "postgresql://postgres@127.0.0.1:5432/test"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Modules whose tests share something of the host, so they run one at a time in one
# pytest-xdist group while the rest run in parallel: network namespaces and bridges (and
# the cleanup of a name prefix), the README's fixed ports, NATS subjects (the fabric's are
# fixed), and tests bounding how long something takes under signals.
HOST_BOUND = (
    "tests/test_readme.py",
    "tests/cli/test_demo.py",
    "tests/cli/test_bench_fabric.py",
    "tests/cli/test_fabric_cli.py",
    "tests/api/test_fabric_api.py",
    "tests/fabric/",
    "tests/network/test_packets.py",
    "tests/sim/test_region_fabric.py",
    "tests/sim/test_region_fabric_linux.py",
    "tests/sim/test_region_pairs_linux.py",
    "tests/sim/test_region_routers_linux.py",
    "tests/identity/test_partition_netns.py",
    "tests/identity/test_replica_process.py",
    "tests/engine/test_worker_stop.py",
    "tests/engine/test_machines.py",
    "tests/test_retry.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the HOST_BOUND tests in pytest-xdist's group "host", and a test marked
    ``xdist_group(NAME)`` in group NAME. Its ``loadgroup`` schedules by the "@group" suffix of
    a test's node id, which pytest-xdist 3.8 writes to an attribute pytest 9 no longer reads
    (``_nodeid``): the suffix is written here instead."""
    root = Path(str(config.rootpath))
    for item in items:
        if "@" in item.nodeid:
            continue
        where = Path(str(item.path)).relative_to(root).as_posix()
        marker = item.get_closest_marker("xdist_group")
        if where.startswith(HOST_BOUND):
            item._id = coerce_node_id(f"{item.nodeid}@host")
        elif marker is not None:
            name = marker.args[0] if marker.args else marker.kwargs.get("name", "default")
            item._id = coerce_node_id(f"{item.nodeid}@{name}")
