"""An image policy at real site-sims whose target refuses the image for its storage quota:
site B (``cascade site-sim --image-quota-mib 1``) is smaller than the 2 MiB image, site C has
no quota. The job fails naming site B and the image (Glance's 413), site C gets the image
with its hashes verified, B's failure is recorded (``failing`` in the policy's view) and the
audit backs off from it (failures grow, not a job every pass); once B's quota is raised
(``PUT /sim/v1/image-quota``) a job run on demand copies it and the failure is forgotten."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openstack.connection import Connection
from sqlalchemy import select

from cascade.cli.embedded import EmbeddedSite
from cascade.config import Settings
from cascade.db.models import ConvergencePass
from cascade.replication.image_staging import STAGING_CONTAINER
from cascade.services import Services
from tests.conftest import make_settings
from tests.engine.conftest import WorkerFactory, register, start_site, wait_operation
from tests.replication.test_audit import accepted_policy, policy_view
from tests.replication.test_policies import call, images, run_policy, wait_for

IMAGE = "rep-big"
SIZE = 2 << 20  # site B's quota is 1 MiB
BACKOFF = f"refused by the site: retried after a backoff ({IMAGE})"
GLANCE_TEXT = "Denying attempt to upload image because it exceeds the quota"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", site_call_deadline=10.0)


@pytest.fixture
def three_sites(
    tmp_path: Path, client: TestClient, admin_token: str
) -> Iterator[list[EmbeddedSite]]:
    """Sites A, B (a 1 MiB image quota per project) and C, registered."""
    sites: list[EmbeddedSite] = []
    try:
        for name, args in (("site-a", []), ("site-b", ["--image-quota-mib", "1"]), ("site-c", [])):
            sites.append(start_site(name, tmp_path, *args))
            register(client, admin_token, sites[-1])
        yield sites
    finally:
        for site in sites:
            site.stop()


def passes_backed_off(services: Services) -> int:
    """Convergence passes in which the audit left the image be at a site."""
    with services.db.session() as session:
        repairs = [p.repairs or [] for p in session.scalars(select(ConvergencePass))]
    return sum(any(r["action"] == BACKOFF for r in done) for done in repairs)


def staged(site: EmbeddedSite) -> list[str]:
    """The objects a copy staged at the site (segments, ledger, manifest)."""

    def listing(c: Connection) -> list[str]:
        return [o.name for o in c.object_store.objects(STAGING_CONTAINER)]

    return list(call(site, "list the staged objects", listing))


def failing_at_b(
    client: TestClient, headers: dict[str, str], policy_id: str
) -> list[dict[str, Any]]:
    return list(policy_view(client, headers, policy_id)["failing"].get("site-b", []))


def test_an_image_beyond_a_targets_quota_fails_there_only_and_the_audit_backs_off(
    services: Services,
    client: TestClient,
    admin_token: str,
    three_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    site_a, site_b, site_c = three_sites
    headers = {"X-Auth-Token": admin_token}

    def seed(c: Connection) -> None:
        c.image.create_image(
            name=IMAGE,
            data=os.urandom(SIZE),
            disk_format="raw",
            container_format="bare",
            tier="gold",
        )

    call(site_a, "seed the source", seed)
    start_worker("w1", CASCADE_CONVERGENCE_INTERVAL="1")
    accepted = accepted_policy(
        client,
        admin_token,
        kind="images",
        source_site="site-a",
        names=[IMAGE],
        conflict="cascade_wins",  # under report, B's queued copy is only reported (changed)
    )
    policy_id = accepted["policy"]["id"]
    assert accepted["policy"]["sites"] == ["site-b", "site-c"], accepted

    # The job fails naming site B and the image, with Glance's answer; site C has the image.
    first = wait_operation(client, admin_token, accepted["operation"]["id"])
    assert first["status"] == "failed", first
    assert f"site site-b: image {IMAGE}:" in first["error"], first
    assert GLANCE_TEXT in first["error"], first
    assert "site-c" not in first["error"], first
    source, at_c = images(site_a)[IMAGE], images(site_c)[IMAGE]
    assert at_c.status == "active"
    assert (at_c.checksum, at_c.hash_value, at_c.size) == (
        source.checksum,
        source.hash_value,
        SIZE,
    )
    assert at_c.properties["tier"] == "gold"
    at_b = images(site_b)[IMAGE]
    assert (at_b.status, at_b.size) == ("queued", None)  # the failed import leaves it queued
    kept = [name.split("/", 1)[1] for name in staged(site_b)]  # for the retry to import
    assert kept == ["image", "ledger.json", "segments/00000000"], kept

    # Recorded and backed off from: three failures in a row took 1 + 2 passes of waiting,
    # and each failure was one job, not one per pass.
    three = wait_for(
        lambda: [f for f in failing_at_b(client, headers, policy_id) if f["failures"] >= 3],
        "three failures",
        timeout=240,
    )
    (failure,) = three
    assert failure["name"] == IMAGE
    assert f"site site-b: image {IMAGE}:" in failure["error"], failure
    assert GLANCE_TEXT in failure["error"], failure
    assert passes_backed_off(services) >= 1 + 2
    jobs = client.get("/v1/replication/jobs", headers=headers, params={"policy": policy_id})
    failed_jobs = [j for j in jobs.json()["jobs"] if j["status"] == "failed"]
    assert 3 <= len(failed_jobs) <= failure["failures"] + 1, (failed_jobs, failure)
    assert not policy_view(client, headers, policy_id)["failing"].get("site-c")

    # Site B's quota raised at run time: a job run on demand copies the image there.
    def raise_quota(c: Connection) -> None:
        c.session.put(f"{site_b.url}/sim/v1/image-quota", json={"image_size_total_mib": 4})

    call(site_b, "raise the image quota", raise_quota)
    wait_for(lambda: run_policy(client, headers, policy_id), "a job of the policy")
    wait_for(lambda: images(site_b)[IMAGE].status == "active", f"{IMAGE} active at site B")
    at_b = images(site_b)[IMAGE]
    assert (at_b.checksum, at_b.hash_value) == (source.checksum, source.hash_value)
    wait_for(lambda: not failing_at_b(client, headers, policy_id), "the failure forgotten")
    assert staged(site_b) == []
