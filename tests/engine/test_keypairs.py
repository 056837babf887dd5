"""Keypairs at real site-sims, checked AT the sites (their Nova keypair API, fingerprints as Nova
computes them), not from Cascade's own record: a same-named different key at a site is a
conflict and is never overwritten; delete removes only Cascade's key; convergence compares
fingerprints, so a key swapped behind Cascade's back is reported, and a missing one put back."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedSite
from cascade.replication.keypairs import fingerprint
from cascade.sites.driver import SiteDriver
from tests.engine.conftest import WorkerFactory, at_site, public_key, wait_operation


def put_at_site(site: EmbeddedSite, name: str, key: str) -> None:
    SiteDriver(site.access()).call(
        f"import keypair {name}", lambda c: c.compute.create_keypair(name=name, public_key=key)
    )


def remove_at_site(site: EmbeddedSite, name: str) -> None:
    SiteDriver(site.access()).call(
        f"delete keypair {name}", lambda c: c.compute.delete_keypair(name)
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def shown(client: TestClient, token: str, name: str) -> dict[str, Any]:
    response = client.get(f"/v1/keypairs/{name}", headers={"X-Auth-Token": token})
    assert response.status_code == 200, response.text
    keypair: dict[str, Any] = response.json()["keypair"]
    return keypair


def test_a_different_key_at_a_site_is_a_conflict_and_delete_leaves_it(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    site_a, site_b = two_sites
    ours, theirs = public_key(), public_key()
    put_at_site(site_b, "shared", theirs)
    start_worker("w1")
    headers = {"X-Auth-Token": admin_token}

    created = client.post(
        "/v1/keypairs", headers=headers, json={"name": "shared", "public_key": ours}
    )
    assert created.status_code == 202, created.text
    failed = wait_operation(client, admin_token, created.json()["operation"]["id"])
    assert failed["status"] == "failed", failed
    assert failed["sites"] == {"site-a": "succeeded", "site-b": "failed"}
    assert "conflict" in failed["error"], failed
    assert fingerprint(theirs) in failed["error"], failed

    keypair = shown(client, admin_token, "shared")
    assert keypair["status"] == "ERROR"
    assert keypair["sites"]["site-a"] == {"status": "present", "error": None}
    assert keypair["sites"]["site-b"]["status"] == "conflict"
    assert fingerprint(theirs) in keypair["sites"]["site-b"]["error"]
    assert at_site(site_a, "shared") == fingerprint(ours)
    assert at_site(site_b, "shared") == fingerprint(theirs), "the site's own key was replaced"

    removed = client.delete("/v1/keypairs/shared", headers=headers)
    assert removed.status_code == 202, removed.text
    done = wait_operation(client, admin_token, removed.json()["operation"]["id"])
    assert done["status"] == "succeeded", done
    assert at_site(site_a, "shared") is None
    assert at_site(site_b, "shared") == fingerprint(theirs), "delete removed a key not Cascade's"
    assert "conflict" in done["result"]["kept"]["site-b"], done["result"]
    assert "site-a" not in done["result"]["kept"]


def test_convergence_compares_fingerprints(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    site_a, site_b = two_sites
    ours, swapped = public_key(), public_key()
    first = start_worker("w1")
    headers = {"X-Auth-Token": admin_token}
    created = client.post("/v1/keypairs", headers=headers, json={"name": "ops", "public_key": ours})
    assert created.status_code == 202, created.text
    done = wait_operation(client, admin_token, created.json()["operation"]["id"])
    assert done["status"] == "succeeded", done
    assert at_site(site_a, "ops") == at_site(site_b, "ops") == fingerprint(ours)

    # Same name, other key at site-a behind Cascade's back: a conflict, not "present".
    first.stop()
    remove_at_site(site_a, "ops")
    put_at_site(site_a, "ops", swapped)
    start_worker("w2", CASCADE_CONVERGENCE_INTERVAL="1")
    wait_for(
        lambda: shown(client, admin_token, "ops")["sites"]["site-a"]["status"] == "conflict",
        30,
        "the swapped key to be reported",
    )
    assert fingerprint(swapped) in shown(client, admin_token, "ops")["sites"]["site-a"]["error"]

    def reported() -> bool:
        passes = client.get("/v1/convergence", headers=headers).json()["passes"]
        drifts = [(r["site"], r["drift"]) for p in passes for r in p["repairs"]]
        return any(site == "site-a" and "conflict" in drift for site, drift in drifts)

    wait_for(reported, 30, "the conflict in a convergence pass's repairs")
    time.sleep(2.5)  # a few more passes: the site's key is left alone
    assert at_site(site_a, "ops") == fingerprint(swapped)

    # The foreign key gone: the next passes put Cascade's back, at the site.
    remove_at_site(site_a, "ops")
    wait_for(lambda: at_site(site_a, "ops") == fingerprint(ours), 30, "ops back at site-a")
    wait_for(
        lambda: shown(client, admin_token, "ops")["sites"]["site-a"]["status"] == "present",
        30,
        "site-a's copy to be present",
    )
    assert at_site(site_b, "ops") == fingerprint(ours)
