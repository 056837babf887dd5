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


def registered(
    tmp_path: Path, client: TestClient, admin_token: str, names: tuple[str, ...]
) -> Iterator[list[EmbeddedSite]]:
    """Site-sims of those names, registered; site-b's image quota is 1 MiB per project."""
    sites: list[EmbeddedSite] = []
    try:
        for name in names:
            args = ["--image-quota-mib", "1"] if name == "site-b" else []
            sites.append(start_site(name, tmp_path, *args))
            register(client, admin_token, sites[-1])
        yield sites
    finally:
        for site in sites:
            site.stop()


@pytest.fixture
def three_sites(
    tmp_path: Path, client: TestClient, admin_token: str
) -> Iterator[list[EmbeddedSite]]:
    """Sites A, B (a 1 MiB image quota per project) and C."""
    yield from registered(tmp_path, client, admin_token, ("site-a", "site-b", "site-c"))


@pytest.fixture
def source_and_small(
    tmp_path: Path, client: TestClient, admin_token: str
) -> Iterator[list[EmbeddedSite]]:
    """Sites A and B (a 1 MiB image quota per project)."""
    yield from registered(tmp_path, client, admin_token, ("site-a", "site-b"))


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


def seed(site: EmbeddedSite) -> None:
    """The source's image, larger than site B's quota."""

    def create(c: Connection) -> None:
        c.image.create_image(
            name=IMAGE,
            data=os.urandom(SIZE),
            disk_format="raw",
            container_format="bare",
            tier="gold",
        )

    call(site, "seed the source", create)


def verified_copy(source: EmbeddedSite, target: EmbeddedSite, name: str, size: int) -> Any:
    """The target's image ``name``: active, with the source's hashes, size and property."""
    original, copied = images(source)[name], images(target)[name]
    assert copied.status == "active"
    assert (copied.checksum, copied.hash_value, copied.size) == (
        original.checksum,
        original.hash_value,
        size,
    )
    assert copied.properties["tier"] == original.properties["tier"] == "gold"
    return copied


def raise_quota(site: EmbeddedSite) -> None:
    def put(c: Connection) -> None:
        c.session.put(f"{site.url}/sim/v1/image-quota", json={"image_size_total_mib": 4})

    call(site, "raise the image quota", put)


def test_an_image_beyond_a_targets_quota_fails_there_only_and_the_audit_backs_off(
    services: Services,
    client: TestClient,
    admin_token: str,
    three_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    site_a, site_b, site_c = three_sites
    headers = {"X-Auth-Token": admin_token}

    seed(site_a)
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
    source = images(site_a)[IMAGE]
    verified_copy(site_a, site_c, IMAGE, SIZE)
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
    raise_quota(site_b)
    wait_for(lambda: run_policy(client, headers, policy_id), "a job of the policy")
    wait_for(lambda: images(site_b)[IMAGE].status == "active", f"{IMAGE} active at site B")
    at_b = images(site_b)[IMAGE]
    assert (at_b.checksum, at_b.hash_value) == (source.checksum, source.hash_value)
    wait_for(lambda: not failing_at_b(client, headers, policy_id), "the failure forgotten")
    assert staged(site_b) == []


@pytest.mark.parametrize("conflict", ["report", "site_wins"])
def test_under_report_and_site_wins_the_audit_finishes_a_refused_copy_once_the_quota_allows(
    client: TestClient,
    admin_token: str,
    source_and_small: list[EmbeddedSite],
    start_worker: WorkerFactory,
    conflict: str,
) -> None:
    """The copy site B refused stays queued there with Cascade's source property: it is
    Cascade's unfinished copy, not the site's own image (a conflict under report, adopted
    under site_wins), so the audit reads the image as missing and retries it after its
    backoff; once the quota allows it, the audit's own job finishes it."""
    site_a, site_b = source_and_small
    headers = {"X-Auth-Token": admin_token}
    seed(site_a)
    start_worker("w1", CASCADE_CONVERGENCE_INTERVAL="1")
    accepted = accepted_policy(
        client, admin_token, kind="images", source_site="site-a", names=[IMAGE], conflict=conflict
    )
    policy_id = accepted["policy"]["id"]
    first = wait_operation(client, admin_token, accepted["operation"]["id"])
    assert first["status"] == "failed", first
    assert GLANCE_TEXT in first["error"], first
    queued = images(site_b)[IMAGE]
    assert queued.status == "queued"

    def missing_at_b() -> bool:
        drift = policy_view(client, headers, policy_id)["drift"].get("site-b") or {}
        return bool(drift.get("missing") == [IMAGE] and not drift.get("changed"))

    wait_for(missing_at_b, "the audit to read the refused copy as missing at site B")
    wait_for(lambda: failing_at_b(client, headers, policy_id), "the refusal recorded")

    raise_quota(site_b)  # nothing else: the audit's next retry copies it
    wait_for(lambda: images(site_b)[IMAGE].status == "active", f"{IMAGE} active", timeout=180)
    at_b = verified_copy(site_a, site_b, IMAGE, SIZE)
    named = call(site_b, "list images", lambda c: [i.id for i in c.image.images(name=IMAGE)])
    assert named == [at_b.id] == [queued.id]  # the queued copy was finished, not replaced
    wait_for(lambda: not failing_at_b(client, headers, policy_id), "the failure forgotten")

    def in_sync_at_b() -> bool:
        drift = policy_view(client, headers, policy_id)["drift"]["site-b"]
        return bool(drift["in_sync"] == 1 and not (drift["missing"] or drift["changed"]))

    wait_for(in_sync_at_b, "site B in sync")

    def jobs() -> list[dict[str, Any]]:
        listed = client.get("/v1/replication/jobs", headers=headers, params={"policy": policy_id})
        return list(listed.json()["jobs"])

    wait_for(lambda: all(j["status"] != "running" for j in jobs()), "the jobs to end")
    by_audit = [j["status"] for j in jobs() if j["reason"] in ("audit", "site_joined")]
    assert "succeeded" in by_audit, jobs()  # started by the audit, none on demand
    assert staged(site_b) == []
