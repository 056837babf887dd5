"""A replication job whose source site is down waits for it at real site-sims with a real
worker: the job is ``waiting`` and names the site while the source does not answer, nothing
at the target changes meanwhile, and the job finishes once the source is back; a source that
stays down past ``replication_source_wait`` fails the job, naming the site."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedSite
from tests.engine.conftest import WorkerFactory, wait_operation
from tests.replication.test_audit import accepted_policy
from tests.replication.test_policies import flavors, run_policy, wait_for

Json = dict[str, Any]


def _job_of(client: TestClient, token: str, policy_id: str, operation_id: str) -> Json:
    listed = client.get(
        "/v1/replication/jobs", headers={"X-Auth-Token": token}, params={"policy": policy_id}
    )
    assert listed.status_code == 200, listed.text
    (job,) = [j for j in listed.json()["jobs"] if j["operation"] == operation_id]
    return dict(job)


def _policy_with_a_job_done(client: TestClient, token: str) -> str:
    accepted = accepted_policy(client, token, kind="flavors", source_site="site-a")
    first = wait_operation(client, token, accepted["operation"]["id"], timeout=120)
    assert first["status"] == "succeeded", first
    return str(accepted["policy"]["id"])


def _job_while_down(client: TestClient, token: str, policy_id: str) -> str:
    run = wait_for(lambda: run_policy(client, {"X-Auth-Token": token}, policy_id), "a job")
    return str(run["operation"]["id"])


def test_a_job_waits_for_its_source_site_and_finishes_once_it_is_back(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    source, target = two_sites
    start_worker("w1", CASCADE_SITE_CALL_DEADLINE="1")
    policy_id = _policy_with_a_job_done(client, admin_token)
    at_target = flavors(target)
    source.kill()
    try:
        operation_id = _job_while_down(client, admin_token, policy_id)

        def waiting() -> Json | None:
            job = _job_of(client, admin_token, policy_id, operation_id)
            return job if job["status"] == "waiting" else None

        job = wait_for(waiting, "the job to wait for site A", timeout=120)
        assert job["error"].startswith("waiting for the source: site site-a:"), job
        assert flavors(target).keys() == at_target.keys()  # nothing deleted meanwhile
    finally:
        source.start()
    done = wait_operation(client, admin_token, operation_id, timeout=240)
    assert done["status"] == "succeeded", done
    job = _job_of(client, admin_token, policy_id, operation_id)
    assert (job["status"], job["error"]) == ("succeeded", None), job


def test_a_job_whose_source_stays_down_fails_naming_it(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    source, _target = two_sites
    start_worker("w1", CASCADE_SITE_CALL_DEADLINE="1", CASCADE_REPLICATION_SOURCE_WAIT="3")
    policy_id = _policy_with_a_job_done(client, admin_token)
    source.kill()
    try:
        operation_id = _job_while_down(client, admin_token, policy_id)
        failed = wait_operation(client, admin_token, operation_id, timeout=120)
    finally:
        source.start()
    assert failed["status"] == "failed", failed
    assert "site site-a:" in failed["error"], failed
    job = _job_of(client, admin_token, policy_id, operation_id)
    assert job["status"] == "failed", job
    assert "site site-a:" in job["error"], job
