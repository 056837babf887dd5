"""A site registered with ``identity: replica`` becomes a replica of Cascade's identity: its
own services join Cascade's catalog, it bootstraps from Cascade and follows it (changes within
a second, none while its link to Cascade is cut, key rotations, across its restarts),
validating Cascade's tokens locally; if the site cannot, the registration is refused (502)
and nothing is left registered."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedCascade, EmbeddedSite, free_port
from tests.cli.test_cli import cascade
from tests.conftest import ADMIN_PASSWORD
from tests.identity.test_replica_process import login, until, validates

ENV = {"CASCADE_PASSWORD_HASH_ROUNDS": "4"}


@pytest.fixture
def master(tmp_path: Path) -> Iterator[EmbeddedCascade]:
    with EmbeddedCascade(tmp_path / "master", ADMIN_PASSWORD, env=ENV) as server:
        yield server


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[EmbeddedSite]:
    sim = EmbeddedSite("site-r", tmp_path / "site-r", ADMIN_PASSWORD, env=ENV, region="RegionR")
    with sim as site:
        yield site


def spec(url: str) -> dict[str, object]:
    return {
        "name": "site-r",
        "region_name": "RegionR",
        "identity_url": url,
        "identity": "replica",
        "credentials": {"username": "admin", "password": ADMIN_PASSWORD, "project_name": "admin"},
    }


def add_user(master: EmbeddedCascade, admin: str, name: str) -> None:
    created = httpx.post(
        f"{master.url}/identity/v3/users",
        headers={"X-Auth-Token": admin},
        json={"user": {"name": name, "password": f"{name}-pw"}},
    )
    assert created.status_code == 201, created.text


def user_names(url: str, admin: str) -> set[str]:
    users = httpx.get(f"{url}/identity/v3/users", headers={"X-Auth-Token": admin})
    return {user["name"] for user in users.json()["users"]} if users.status_code == 200 else set()


def cut_from_master(sim: EmbeddedSite, admin: str, cut: bool) -> None:
    answer = httpx.put(
        f"{sim.url}/sim/v1/faults", json={"cut_from_master": cut}, headers={"X-Auth-Token": admin}
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.timeout(120)
def test_a_replica_site_follows_cascade_identity_and_its_key_rotations(
    master: EmbeddedCascade, sim: EmbeddedSite
) -> None:
    admin = login(master.url, "admin", ADMIN_PASSWORD)
    headers = {"X-Auth-Token": admin}
    add_user(master, admin, "operator")
    before = httpx.get(f"{sim.url}/compute/v2.1/servers", headers=headers)
    assert before.status_code == 401  # a Cascade token means nothing to the site yet

    created = httpx.post(f"{master.url}/v1/sites", headers=headers, json=spec(sim.auth_url))
    assert created.status_code == 201, created.text
    assert created.json()["site"]["identity"] == "replica"
    at_site = httpx.get(f"{sim.url}/compute/v2.1/servers", headers=headers)
    assert at_site.status_code == 200, at_site.text
    assert "operator" in user_names(sim.url, admin)
    catalog = httpx.get(f"{master.url}/identity/v3/auth/catalog", headers=headers).json()
    compute = next(entry for entry in catalog["catalog"] if entry["type"] == "compute")
    assert {e["region_id"] for e in compute["endpoints"]} == {"RegionR"}  # adopted

    write = httpx.post(
        f"{sim.url}/identity/v3/projects",
        headers=headers,
        json={"project": {"name": "local", "domain_id": "default"}},
    )
    assert write.status_code == 403  # identity writes go to the master
    assert master.url in write.json()["error"]["message"]
    add_user(master, admin, "late")  # followed, not pushed once
    until(lambda: "late" in user_names(sim.url, admin), timeout=3.0)

    cut_from_master(sim, admin, cut=True)  # the answer to the poll in flight is lost too
    add_user(master, admin, "while-cut")
    time.sleep(2.0)
    assert "while-cut" not in user_names(sim.url, admin)
    cut_from_master(sim, admin, cut=False)
    until(lambda: "while-cut" in user_names(sim.url, admin), timeout=15.0)  # within the backoff

    data_dir = str(master.data_dir)
    rotated = cascade("identity", "rotate-keys", "--timeout", "20", "--data-dir", data_dir)
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert "1/1 sites hold" in rotated.stdout
    fresh = login(master.url, "admin", ADMIN_PASSWORD)
    until(lambda: validates(sim.url, admin, fresh), timeout=5)  # the new primary's token

    sim.stop()
    sim.start()  # follows again after a restart
    add_user(master, admin, "after-restart")
    until(lambda: "after-restart" in user_names(sim.url, admin), timeout=10)
    again = httpx.post(
        f"{sim.url}/identity/v3/projects",
        headers=headers,
        json={"project": {"name": "local", "domain_id": "default"}},
    )
    assert again.status_code == 403  # still, after the restart

    deleted = httpx.delete(f"{master.url}/v1/sites/site-r", headers=headers)
    assert deleted.status_code == 204, deleted.text
    status = cascade("identity", "status", "--json", "--data-dir", data_dir)
    assert json.loads(status.stdout.splitlines()[-1])["replicas"] == []


def test_unreachable_site_is_not_left_registered(client: TestClient, admin_token: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}/identity/v3"
    refused = client.post("/v1/sites", headers={"X-Auth-Token": admin_token}, json=spec(dead))
    assert refused.status_code == 502
    assert "site site-r" in refused.json()["error"]["message"]
    listed = client.get("/v1/sites", headers={"X-Auth-Token": admin_token}).json()["sites"]
    assert listed == []
