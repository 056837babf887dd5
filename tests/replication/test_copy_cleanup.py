"""An unfinished image copy whose source image was removed at the source, at real site-sims
with a real worker: site B's quota refuses the import, so B keeps a queued copy and its
staged chunks; the image is then deleted at site A. While A is down nothing is removed at B
(an unreachable source is not a removed image); once A is back and answers 404 for the
image, the audit's job deletes B's queued copy and what it staged, as an item of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedSite
from cascade.config import Settings
from cascade.replication.kinds import LEFTOVER
from tests.conftest import make_settings
from tests.engine.conftest import WorkerFactory, wait_operation
from tests.replication.test_audit import accepted_policy, policy_view
from tests.replication.test_image_quota import (  # noqa: F401 - a fixture
    IMAGE,
    seed,
    source_and_small,
    staged,
)
from tests.replication.test_policies import call, images, wait_for

Json = dict[str, Any]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", site_call_deadline=5.0)


def cleanup_items(client: TestClient, headers: dict[str, str], policy_id: str) -> list[Json]:
    """The policy's items at site B that removed a leftover."""
    jobs = client.get("/v1/replication/jobs", headers=headers, params={"policy": policy_id})
    found = []
    for job in jobs.json()["jobs"]:
        shown = client.get(f"/v1/replication/jobs/{job['id']}", headers=headers).json()["job"]
        found += [
            i
            for i in shown["items"]
            if i["site"] == "site-b" and i["action"] == "delete" and i["status"] == "done"
        ]
    return found


def test_an_unfinished_copy_of_a_removed_source_image_is_removed_only_once_the_source_says_so(
    client: TestClient,
    admin_token: str,
    source_and_small: list[EmbeddedSite],  # noqa: F811 - the fixture
    start_worker: WorkerFactory,
) -> None:
    site_a, site_b = source_and_small
    headers = {"X-Auth-Token": admin_token}
    seed(site_a)
    start_worker("w1", CASCADE_CONVERGENCE_INTERVAL="1")
    accepted = accepted_policy(
        client, admin_token, kind="images", source_site="site-a", names=[IMAGE]
    )
    policy_id = accepted["policy"]["id"]
    first = wait_operation(client, admin_token, accepted["operation"]["id"])
    assert first["status"] == "failed", first
    assert images(site_b)[IMAGE].status == "queued"
    assert staged(site_b), "the refused copy keeps its staged chunks"

    source_id = images(site_a)[IMAGE].id
    call(site_a, "delete the source image", lambda c: c.image.delete_image(source_id))
    site_a.kill()
    try:

        def unreachable() -> bool:
            note = str(policy_view(client, headers, policy_id)["drift"].get("site-b") or "")
            return "source unreachable" in note

        wait_for(unreachable, "the audit to find site A unreachable", timeout=120)
        assert images(site_b)[IMAGE].status == "queued"  # nothing removed meanwhile
        assert staged(site_b)
        assert cleanup_items(client, headers, policy_id) == []
    finally:
        site_a.start()

    wait_for(lambda: IMAGE not in images(site_b), "the queued copy removed at B", timeout=180)
    wait_for(lambda: staged(site_b) == [], "the staged chunks removed at B")
    (item,) = wait_for(lambda: cleanup_items(client, headers, policy_id), "the job's item")
    assert item["name"] == IMAGE
    assert item["error"] == LEFTOVER
