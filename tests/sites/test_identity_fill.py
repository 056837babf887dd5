"""A site registered with ``identity: replica`` gets Cascade's identity copy at registration
and from then on validates Cascade's tokens locally; if the site cannot take it, the
registration is refused (502) and nothing is left registered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedSite, free_port
from tests.conftest import ADMIN_PASSWORD, login


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[EmbeddedSite]:
    site = EmbeddedSite(
        "site-r", tmp_path / "site-r", ADMIN_PASSWORD, env={"CASCADE_PASSWORD_HASH_ROUNDS": "4"}
    )
    with site:
        yield site


def register(client: TestClient, token: str, url: str) -> httpx.Response:
    return client.post(
        "/v1/sites",
        headers={"X-Auth-Token": token},
        json={
            "name": "site-r",
            "region_name": "RegionR",
            "identity_url": url,
            "identity": "replica",
            "credentials": {
                "username": "admin",
                "password": ADMIN_PASSWORD,
                "project_name": "admin",
            },
        },
    )


def test_replica_site_validates_cascade_tokens(
    client: TestClient, admin_token: str, sim: EmbeddedSite
) -> None:
    headers = {"X-Auth-Token": admin_token}
    client.post(
        "/identity/v3/users",
        headers=headers,
        json={"user": {"name": "operator", "password": "operator-pw"}},
    )
    before = httpx.get(f"{sim.url}/compute/v2.1/servers", headers=headers)
    assert before.status_code == 401  # a Cascade token means nothing to the site yet
    created = register(client, admin_token, sim.auth_url)
    assert created.status_code == 201, created.text
    assert created.json()["site"]["identity"] == "replica"
    at_site = httpx.get(f"{sim.url}/compute/v2.1/servers", headers=headers)
    assert at_site.status_code == 200, at_site.text
    users = httpx.get(f"{sim.url}/identity/v3/users", headers=headers).json()["users"]
    assert "operator" in {u["name"] for u in users}
    catalog = httpx.get(f"{sim.url}/identity/v3/auth/catalog", headers=headers).json()
    assert "compute" in {entry["type"] for entry in catalog["catalog"]}
    fresh = login(client, "admin", ADMIN_PASSWORD, "admin")
    assert (
        httpx.get(
            f"{sim.url}/identity/v3/auth/tokens",
            headers={"X-Auth-Token": fresh, "X-Subject-Token": fresh},
        ).status_code
        == 200
    )


def test_unreachable_site_is_not_left_registered(client: TestClient, admin_token: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}/identity/v3"
    refused = register(client, admin_token, dead)
    assert refused.status_code == 502
    assert "site site-r" in refused.json()["error"]["message"]
    listed = client.get("/v1/sites", headers={"X-Auth-Token": admin_token}).json()["sites"]
    assert listed == []
