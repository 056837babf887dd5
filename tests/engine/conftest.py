"""Fixtures for the engine: real site-sims, real ``cascade worker`` processes on the test's
database, and helpers that follow operations to their end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi.testclient import TestClient
from openstack import exceptions as sdk_exceptions

from cascade.cli.embedded import EmbeddedSite, EmbeddedWorker
from cascade.config import Settings
from cascade.services import Services
from cascade.sites.driver import SiteDriver
from tests.conftest import ADMIN_PASSWORD, make_settings

IMAGE = "engine-image"
WORKER_ENV = {
    "CASCADE_PASSWORD_HASH_ROUNDS": "4",
    "CASCADE_HEARTBEAT_INTERVAL": "0.3",
    "CASCADE_WORKER_DEAD_AFTER": "2",
    "CASCADE_SITE_CALL_DEADLINE": "8",
    "CASCADE_WORKER_CONCURRENCY": "4",
    # An idle worker polling every 0.05 s (the default, for throughput) burns ~0.15 of a
    # core; the suite runs several at once on 2 cores. 0.2 s: ~0.04, still ~36 operations/s.
    "CASCADE_QUEUE_POLL_INTERVAL": "0.2",
}


def start_site(name: str, tmp_path: Path, *args: str) -> EmbeddedSite:
    site = EmbeddedSite(
        name,
        tmp_path / name,
        ADMIN_PASSWORD,
        args=["--build-seconds", "0.2", *args],
        env={"CASCADE_PASSWORD_HASH_ROUNDS": "4"},
    )
    site.start(timeout=120)  # a loaded machine may take longer than the default 90 s
    driver = SiteDriver(site.access())
    driver.call(
        "upload image",
        lambda c: c.image.create_image(
            name=IMAGE, data=b"engine" * 512, disk_format="raw", container_format="bare"
        ),
    )
    return site


def register(client: TestClient, token: str, site: EmbeddedSite) -> None:
    response = client.post(
        "/v1/sites",
        headers={"X-Auth-Token": token},
        json={
            "name": site.site_name,
            "region_name": site.region,
            "identity_url": site.auth_url,
            "credentials": {
                "username": "admin",
                "password": ADMIN_PASSWORD,
                "project_name": "admin",
            },
        },
    )
    assert response.status_code == 201, response.text


@pytest.fixture
def two_sites(tmp_path: Path, client: TestClient, admin_token: str) -> Iterator[list[EmbeddedSite]]:
    sites = []
    try:
        for name in ("site-a", "site-b"):
            sites.append(start_site(name, tmp_path))
            register(client, admin_token, sites[-1])
        yield sites
    finally:
        for site in sites:
            site.stop()


@pytest.fixture(scope="module")
def module_sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[EmbeddedSite]]:
    """Site-sims ``site-a`` and ``site-b`` started once for a module, stopped after it: for
    the tests that neither stop, kill nor fault a site (mark them ``xdist_group`` so that
    one test process starts the pair)."""
    root = tmp_path_factory.mktemp("sites")
    sites: list[EmbeddedSite] = []
    try:
        for name in ("site-a", "site-b"):
            sites.append(start_site(name, root))
        yield sites
    finally:
        for site in sites:
            site.stop()


@pytest.fixture
def shared_sites(
    module_sites: list[EmbeddedSite], client: TestClient, admin_token: str
) -> list[EmbeddedSite]:
    """The module's two site-sims registered in this test's own Cascade (as ``two_sites``);
    a test given them leaves them serving and unfaulted, and counts only its own resources."""
    for site in module_sites:
        register(client, admin_token, site)
    return module_sites


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings on SQLite, and again on a fresh PostgreSQL database."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        return make_settings(tmp_path / "data", database_url=url)
    return make_settings(tmp_path / "data")


class WorkerFactory(Protocol):
    def __call__(self, executor_id: str, **extra_env: str) -> EmbeddedWorker: ...


@pytest.fixture
def start_worker(settings: Settings, services: Services) -> Iterator[WorkerFactory]:
    """Start a ``cascade worker`` with the given executor id; all are stopped at the end."""
    started: list[EmbeddedWorker] = []

    env = dict(WORKER_ENV)
    if settings.database_url:
        env["CASCADE_DATABASE_URL"] = settings.database_url

    def start(executor_id: str, **extra_env: str) -> EmbeddedWorker:
        worker = EmbeddedWorker(
            settings.data_dir, executor_id, services.db, env={**env, **extra_env}
        )
        started.append(worker)
        worker.start()
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_nothing_pending(services: Services, timeout: float = 120) -> None:
    """Wait until no workflow is PENDING in DBOS: none left behind by a killed or fenced
    worker. Not a single look: a live worker may be running a schedule's tick (convergence,
    prune: once a minute) at any instant, and that ends on its own."""
    deadline = time.monotonic() + timeout
    while pending := services.queue.pending_executors():
        assert time.monotonic() < deadline, f"workflows left PENDING under {sorted(pending)}"
        time.sleep(0.2)


def wait_operation(
    client: TestClient, token: str, operation_id: str, timeout: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v1/operations/{operation_id}", headers={"X-Auth-Token": token})
        operation: dict[str, Any] = response.json()["operation"]
        if operation["status"] in ("succeeded", "failed"):
            return operation
        assert time.monotonic() < deadline, f"operation still {operation['status']}: {operation}"
        time.sleep(0.1)


def create_server(
    client: TestClient, token: str, name: str, site: str | None = None, **extra: Any
) -> dict[str, Any]:
    body = {"name": name, "flavor": "m1.tiny", "image": IMAGE, **extra}
    if site is not None:
        body["site"] = site
    response = client.post("/v1/servers", headers={"X-Auth-Token": token}, json=body)
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


def public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def at_site(site: EmbeddedSite, name: str) -> str | None:
    """The fingerprint the site reports for its key ``name`` (None: no such key)."""

    def look(c: Any) -> str | None:
        try:
            return str(c.compute.get_keypair(name).fingerprint)
        except sdk_exceptions.NotFoundException:
            return None

    return SiteDriver(site.access()).call(f"show keypair {name}", look)
