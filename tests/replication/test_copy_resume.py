"""An image policy's copy interrupted at real site-sims with a real worker, and resumed from
the last chunk the target confirmed: the worker SIGKILLed mid-copy (restarted, it runs the
copy step again), and the target site killed mid-copy (the job fails naming it; back up, the
next job finishes the copy). The job items' ``bytes_sent`` count every chunk the copies set
out to put to the target, so what was sent again is counted: at most the chunks in flight
at the interruption, never the half of the image already there. A 4 MiB image under a
256 KiB/s bandwidth limit (256 KiB chunks) copies in about 16 s, so each interruption lands
mid-copy."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openstack.connection import Connection

from cascade.cli.embedded import EmbeddedSite, EmbeddedWorker
from cascade.config import Settings
from cascade.replication.image_transfer import IN_FLIGHT, chunk_bytes_for
from tests.conftest import make_settings
from tests.engine.conftest import WorkerFactory, wait_operation
from tests.replication.test_audit import accepted_policy
from tests.replication.test_image_quota import staged, verified_copy
from tests.replication.test_policies import call, run_policy, wait_for

IMAGE = "rep-resume"
SIZE = 4 << 20
LIMIT = 256 << 10  # bytes per second per target: chunks of 256 KiB
CHUNK = chunk_bytes_for(LIMIT)
Json = dict[str, Any]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", site_call_deadline=10.0)


def seed(site: EmbeddedSite) -> None:
    call(
        site,
        "seed the source",
        lambda c: c.image.create_image(
            name=IMAGE,
            data=os.urandom(SIZE),
            disk_format="raw",
            container_format="bare",
            tier="gold",
        ),
    )


def copy_items(client: TestClient, headers: dict[str, str], policy_id: str) -> list[Json]:
    """The policy's items copying the image to site B, one per job, oldest first."""
    jobs = client.get("/v1/replication/jobs", headers=headers, params={"policy": policy_id})
    found = []
    for job in reversed(jobs.json()["jobs"]):
        shown = client.get(f"/v1/replication/jobs/{job['id']}", headers=headers).json()["job"]
        found += [
            i
            for i in shown["items"]
            if (i["site"], i["name"], i["action"]) == ("site-b", IMAGE, "create")
        ]
    return found


def half_copied(client: TestClient, headers: dict[str, str], policy_id: str) -> int:
    """The bytes the target confirmed once they are at least half the image (0 before)."""
    done = max((i["bytes_done"] or 0 for i in copy_items(client, headers, policy_id)), default=0)
    return done if done >= SIZE // 2 else 0


@dataclass
class Halfway:
    """A worker copying the image from site A to site B under a policy, once B confirmed
    half of it."""

    client: TestClient
    token: str
    source: EmbeddedSite
    target: EmbeddedSite
    worker: EmbeddedWorker
    accepted: Json
    confirmed: int  # bytes B had confirmed when the test saw half

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self.token}

    @property
    def policy_id(self) -> str:
        return str(self.accepted["policy"]["id"])

    def items(self) -> list[Json]:
        return copy_items(self.client, self.headers, self.policy_id)


@pytest.fixture
def halfway(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> Halfway:
    seed(two_sites[0])
    worker = start_worker("w1", CASCADE_SITE_CALL_DEADLINE="3")
    accepted = accepted_policy(
        client,
        admin_token,
        kind="images",
        source_site="site-a",
        names=[IMAGE],
        bandwidth_limit=LIMIT,
    )
    assert accepted["policy"]["sites"] == ["site-b"], accepted
    headers = {"X-Auth-Token": admin_token}
    confirmed = wait_for(
        lambda: half_copied(client, headers, accepted["policy"]["id"]),
        "half the image at site B",
        timeout=180,
    )
    assert confirmed < SIZE, "the copy ended before it could be interrupted"
    return Halfway(client, admin_token, *two_sites, worker, accepted, confirmed)


def check_copied(source: EmbeddedSite, target: EmbeddedSite) -> None:
    verified_copy(source, target, IMAGE, SIZE)
    assert staged(target) == []


def resent(items: list[Json], confirmed: int) -> int:
    """The bytes sent more than once over the items' attempts, checked against what the
    target had confirmed at the interruption: every chunk beyond it was sent (at least)
    once, the ones before it were not sent again."""
    sent = sum(i["bytes_sent"] or 0 for i in items)
    again = sent - SIZE
    print(f"image {SIZE} B, sent {sent} B, sent again {again} B ({again / SIZE:.1%})")
    assert 0 <= again <= IN_FLIGHT * CHUNK, items  # the chunks in flight at most
    assert again < SIZE - confirmed, items  # a copy from zero sends the confirmed half again
    return again


def test_a_copy_whose_worker_was_sigkilled_resumes_from_the_confirmed_chunks(
    halfway: Halfway,
) -> None:
    halfway.worker.kill()
    halfway.worker.start()  # recovers its workflows: the copy step runs again
    operation = halfway.accepted["operation"]["id"]
    done = wait_operation(halfway.client, halfway.token, operation, timeout=240)
    assert done["status"] == "succeeded", done
    (item,) = halfway.items()
    assert (item["status"], item["bytes_done"], item["bytes_total"]) == ("done", SIZE, SIZE)
    resent([item], halfway.confirmed)
    check_copied(halfway.source, halfway.target)


def test_a_copy_whose_target_site_was_killed_resumes_once_it_is_back(halfway: Halfway) -> None:
    client, token, target = halfway.client, halfway.token, halfway.target
    target.kill()
    try:
        failed = wait_operation(client, token, halfway.accepted["operation"]["id"], timeout=120)
    finally:
        target.start()
    assert failed["status"] == "failed", failed
    assert f"site site-b: image {IMAGE}:" in failed["error"], failed

    def queued_at_b(c: Connection) -> list[str]:
        return [i.status for i in c.image.images(name=IMAGE)]

    assert call(target, "the copy at site B", queued_at_b) == ["queued"]
    run = wait_for(lambda: run_policy(client, halfway.headers, halfway.policy_id), "a job")
    done = wait_operation(client, token, run["operation"]["id"], timeout=240)
    assert done["status"] == "succeeded", done
    first, last = halfway.items()
    assert first["status"] == "error", first
    assert f"site site-b: image {IMAGE}:" in first["error"], first
    assert (last["status"], last["bytes_done"]) == ("done", SIZE)
    assert last["bytes_sent"] <= SIZE - halfway.confirmed, (first, last)  # only what B had not
    resent([first, last], halfway.confirmed)
    check_copied(halfway.source, target)
