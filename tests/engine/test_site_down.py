"""A site that is down: its part of an operation retries until the deadline and then fails
with an error naming the site; the other site's work goes on unaffected; once the site is
back, the convergence pass puts what is missing there."""

from __future__ import annotations

import time

import httpx
from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedSite
from cascade.identity.render import password_auth
from cascade.replication.keypairs import fingerprint
from tests.conftest import ADMIN_PASSWORD
from tests.engine.conftest import (
    WorkerFactory,
    at_site,
    create_server,
    public_key,
    wait_operation,
)

DEADLINE = "3"
OUTAGE_SECONDS = 7


def _outage(site: EmbeddedSite, seconds: float) -> None:
    login = httpx.post(
        f"{site.auth_url}/auth/tokens", json=password_auth("admin", ADMIN_PASSWORD, "admin")
    )
    token = login.headers["X-Subject-Token"]
    response = httpx.post(
        f"{site.url}/sim/v1/outage", json={"seconds": seconds}, headers={"X-Auth-Token": token}
    )
    assert response.status_code == 202, response.text
    time.sleep(0.3)


def test_a_down_site_fails_its_part_only_and_is_repaired_later(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    start_worker("w1", CASCADE_SITE_CALL_DEADLINE=DEADLINE, CASCADE_CONVERGENCE_INTERVAL="2")
    headers = {"X-Auth-Token": admin_token}
    _outage(two_sites[1], OUTAGE_SECONDS)
    down_since = time.monotonic()
    key = public_key()
    keypair = client.post(
        "/v1/keypairs", headers=headers, json={"name": "ops-key", "public_key": key}
    )
    assert keypair.status_code == 202, keypair.text
    server = create_server(client, admin_token, "unaffected", site="site-a")

    server_done = wait_operation(client, admin_token, server["operation"]["id"])
    assert server_done["status"] == "succeeded"
    assert time.monotonic() - down_since < OUTAGE_SECONDS, "site-a waited for site-b"

    failed = wait_operation(client, admin_token, keypair.json()["operation"]["id"])
    assert failed["status"] == "failed"
    assert failed["sites"] == {"site-a": "succeeded", "site-b": "failed"}
    assert "1 of 2 sites failed" in failed["error"]
    assert "site site-b" in failed["error"]
    assert "Connect" in failed["error"], failed["error"]
    shown = client.get("/v1/keypairs/ops-key", headers=headers).json()["keypair"]
    assert shown["status"] == "ERROR"
    assert shown["sites"]["site-a"]["status"] == "present"
    assert shown["sites"]["site-b"]["status"] == "error"
    assert at_site(two_sites[0], "ops-key") == fingerprint(key)

    deadline = time.monotonic() + 40
    while shown["sites"]["site-b"]["status"] != "present" or shown["status"] != "ACTIVE":
        assert time.monotonic() < deadline, f"site-b never repaired: {shown}"
        time.sleep(0.5)
        shown = client.get("/v1/keypairs/ops-key", headers=headers).json()["keypair"]
    # The key is at every site: asked of the sites themselves, not of Cascade's record.
    for site in two_sites:
        assert at_site(site, "ops-key") == fingerprint(key), site.site_name

    removed = client.delete("/v1/keypairs/ops-key", headers=headers)
    assert removed.status_code == 202, removed.text
    done = wait_operation(client, admin_token, removed.json()["operation"]["id"])
    assert done["status"] == "succeeded", done
    assert done["sites"] == {"site-a": "succeeded", "site-b": "succeeded"}
    assert client.get("/v1/keypairs/ops-key", headers=headers).status_code == 404
    for site in two_sites:
        assert at_site(site, "ops-key") is None, site.site_name
