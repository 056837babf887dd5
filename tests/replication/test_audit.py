"""The replication audit at real site-sims: a pass reads each policy's source once (the source
stopped mid-pass is not noticed until the next pass); a create a site keeps refusing (a flavor
id taken there by another flavor) is recorded per site and resource and retried after a
growing number of passes, not on every pass, shown by the API and ``cascade replication
status``, and forgotten once a job writes it; and a keypairs policy's jobs and audit write
the copies ``/v1/keypairs/{name}`` shows (a site registered later, a key swapped at a site)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openstack.connection import Connection
from sqlalchemy import select

from cascade.cli.embedded import EmbeddedSite
from cascade.cli.replication import site_failing
from cascade.config import Settings
from cascade.db.models import ConvergencePass, Site
from cascade.db.replication_models import ReplicationPolicy
from cascade.engine import context as engine_context
from cascade.engine.context import EngineContext
from cascade.replication.audit import audit_policy, one_pass
from cascade.replication.keypairs import fingerprint
from cascade.replication.schemas import PolicyOut
from cascade.services import Services
from tests.conftest import make_settings
from tests.engine.conftest import WorkerFactory, public_key, register, start_site, wait_operation
from tests.replication.test_policies import (
    call,
    flavors,
    post_policy,
    replication_cli,
    run_policy,
    wait_for,
)

Json = dict[str, Any]
BACKOFF = "refused by the site: retried after a backoff (rep.small)"
SHARED = pytest.mark.xdist_group("audit-shared-sites")  # one process starts them once


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """This process's site calls give up after 3 s (a stopped source fails fast)."""
    return make_settings(tmp_path / "data", site_call_deadline=3.0)


def policy_view(client: TestClient, headers: dict[str, str], policy_id: str) -> Json:
    found: Json = client.get(f"/v1/replication/policies/{policy_id}", headers=headers).json()
    policy: Json = found["policy"]
    return policy


def accepted_policy(client: TestClient, token: str, **body: Any) -> Json:
    response = post_policy(client, token, **body)
    assert response.status_code == 202, response.text
    accepted: Json = response.json()
    return accepted


def test_a_pass_reads_the_source_once(
    services: Services,
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site_a, _site_b = two_sites
    accepted = accepted_policy(client, admin_token, kind="flavors", source_site="site-a")
    engine = EngineContext(services)
    monkeypatch.setattr(engine_context, "_context", engine)  # this process audits, as a worker
    policy = engine.row(ReplicationPolicy, accepted["policy"]["id"], "the policy")
    with services.db.session() as session:
        site_b = session.scalars(select(Site).where(Site.name == "site-b")).one()
        session.expunge(site_b)
    with one_pass():
        first = audit_policy(engine, policy, site_b)
        assert first.wanted >= 4, first  # the sim's default flavors at least
        site_a.stop()
        again = audit_policy(engine, policy, site_b)  # the same pass: not read again
        assert again.wanted == first.wanted
        assert (
            policy_view(client, {"X-Auth-Token": admin_token}, policy.id)["drift"]["site-b"]["note"]
            is None
        )
    with one_pass():
        later = audit_policy(engine, policy, site_b)
    assert later.wanted == 0
    note = policy_view(client, {"X-Auth-Token": admin_token}, policy.id)["drift"]["site-b"]["note"]
    assert note.startswith("source unreachable: site site-a"), note


def backoff_passes(services: Services) -> int:
    """Convergence passes in which the audit left rep.small be, waiting out its backoff."""
    with services.db.session() as session:
        passes = session.scalars(select(ConvergencePass)).all()
        return sum(any(r["action"] == BACKOFF for r in p.repairs or []) for p in passes)


def failing_at_b(client: TestClient, headers: dict[str, str], policy_id: str) -> list[Json]:
    found: list[Json] = policy_view(client, headers, policy_id)["failing"].get("site-b", [])
    return found


@SHARED
def test_a_refused_create_is_retried_after_a_growing_number_of_passes(
    services: Services,
    client: TestClient,
    admin_token: str,
    shared_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    site_a, site_b = shared_sites
    headers = {"X-Auth-Token": admin_token}

    def seed(c: Connection) -> None:
        c.compute.create_flavor(id="rep-1", name="rep.small", vcpus=1, ram=256, disk=1)
        c.compute.create_flavor(id="rep-2", name="rep.fine", vcpus=1, ram=512, disk=1)

    call(site_a, "seed the source", seed)
    call(  # site B's own flavor under rep.small's id: every create of rep.small there fails
        site_b,
        "a local flavor with rep.small's id",
        lambda c: c.compute.create_flavor(id="rep-1", name="local", vcpus=2, ram=128, disk=1),
    )
    start_worker("w1", CASCADE_CONVERGENCE_INTERVAL="1")
    accepted = accepted_policy(
        client, admin_token, kind="flavors", source_site="site-a", conflict="cascade_wins"
    )
    policy_id = accepted["policy"]["id"]
    first = wait_operation(client, admin_token, accepted["operation"]["id"])
    assert first["status"] == "failed", first
    assert "site site-b: create flavor rep.small failed" in first["error"], first
    assert flavors(site_b)["rep.fine"].id == "rep-2", "the other flavor did not go on"

    # Failed three times in a row: after the 1st the audit left it for 1 pass, after the
    # 2nd for 2 (and now waits 4); each job that ran it failed it once more.
    three = wait_for(
        lambda: [f for f in failing_at_b(client, headers, policy_id) if f["failures"] >= 3],
        "three failures",
        timeout=240,
    )
    (failure,) = three
    assert failure["name"] == "rep.small"
    assert "site site-b: create flavor rep.small failed: HTTP 409" in failure["error"], failure
    assert failure["retry_in_passes"] <= 4, failure
    assert backoff_passes(services) >= 1 + 2
    jobs = client.get("/v1/replication/jobs", headers=headers, params={"policy": policy_id})
    failed_jobs = [j for j in jobs.json()["jobs"] if j["status"] == "failed"]
    assert len(failed_jobs) >= 3
    assert len(failed_jobs) <= failure["failures"] + 1, (failed_jobs, failure)
    shown = replication_cli(services, "status", "--json").strip().splitlines()[-1]
    (listed,) = [PolicyOut.model_validate(p) for p in json.loads(shown)]
    (at_b,) = listed.failing["site-b"]
    assert at_b.name == "rep.small"
    assert at_b.failures >= 3
    row = site_failing(listed.failing["site-b"])
    assert row.startswith(f"rep.small ({at_b.failures} failed, "), row
    metrics = client.get("/metrics", headers=headers).text
    assert f'cascade_replication_failing{{kind="flavors",policy="{policy_id}"}} 1.0' in metrics

    # The site mended: a job run on demand writes rep.small, and its failures are forgotten.
    call(site_b, "remove the local flavor", lambda c: c.compute.delete_flavor("rep-1"))
    wait_for(lambda: run_policy(client, headers, policy_id), "a job of the policy")
    wait_for(lambda: "rep.small" in flavors(site_b), "rep.small at site B")
    assert flavors(site_b)["rep.small"].id == "rep-1"
    wait_for(lambda: not failing_at_b(client, headers, policy_id), "the failure forgotten")


def copy_at(client: TestClient, headers: dict[str, str], site: str) -> Callable[[], Any]:
    def look() -> Any:
        shown = client.get("/v1/keypairs/k1", headers=headers).json()["keypair"]
        return shown["sites"].get(site)

    return look


@SHARED
def test_a_keypairs_policy_writes_the_copies_keypairs_show(
    client: TestClient,
    admin_token: str,
    tmp_path: Path,
    shared_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    _site_a, site_b = shared_sites
    headers = {"X-Auth-Token": admin_token}
    start_worker("w1", CASCADE_CONVERGENCE_INTERVAL="1")
    key = public_key()
    created = client.post("/v1/keypairs", headers=headers, json={"name": "k1", "public_key": key})
    assert created.status_code == 202, created.text
    assert wait_operation(client, admin_token, created.json()["operation"]["id"])["status"] == (
        "succeeded"
    )
    accepted = accepted_policy(client, admin_token, kind="keypairs", conflict="report")
    assert wait_operation(client, admin_token, accepted["operation"]["id"])["status"] == (
        "succeeded"
    )

    # Another key under k1 at site B, behind Cascade's back: the audit marks that copy.
    other = public_key()

    def swap(c: Connection) -> None:
        c.compute.delete_keypair("k1")
        c.compute.create_keypair(name="k1", public_key=other)

    call(site_b, "swap k1", swap)
    conflict = wait_for(
        lambda: (
            (copy_at(client, headers, "site-b")() or {}).get("status") == "conflict"
            and copy_at(client, headers, "site-b")()
        ),
        "site B's copy in conflict",
    )
    assert "a different keypair named k1 is at the site" in conflict["error"], conflict
    listed = call(site_b, "list keypairs", lambda c: {k.name: k for k in c.compute.keypairs()})
    assert listed["k1"].fingerprint == fingerprint(other), "rule report changed the site"
    assert copy_at(client, headers, "site-a")() == {"status": "present", "error": None}

    # A site registered later: the policy's job puts k1 there, and its copy shows it.
    site_c = start_site("site-c", tmp_path)
    try:
        register(client, admin_token, site_c)
        shown = wait_for(copy_at(client, headers, "site-c"), "a copy at site C")
        wait_for(
            lambda: copy_at(client, headers, "site-c")() == {"status": "present", "error": None},
            f"site C's copy present (was {shown})",
        )
        listed = call(site_c, "list keypairs", lambda c: {k.name: k for k in c.compute.keypairs()})
        assert listed["k1"].fingerprint == fingerprint(key)
    finally:
        site_c.stop()
