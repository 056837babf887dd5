"""Strategy 1's barrier against real site-sims and real ``cascade worker`` processes: a plan
of three servers, each with a data volume; a checkpoint freezes them in order, takes one group
snapshot of the three volumes and thaws them in reverse; a failed quiesce and a worker
SIGKILLed mid-freeze both end with every frozen server thawed, last first, as the site's own
records show."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedSite
from cascade.db.protection_models import Checkpoint
from cascade.protection.site_groups import cinder
from cascade.services import Services
from cascade.sites.driver import SiteDriver
from tests.conftest import hidden_from, make_tenant
from tests.engine.conftest import WorkerFactory, wait_operation
from tests.protection.vnf import (
    available_checkpoint,
    freezes_and_thaws,
    frozen_now,
    protected_vnf,
    show_checkpoint,
    sim_admin,
    take_checkpoint,
)

FREEZE_ORDER = [("quiesce", 1), ("quiesce", 2), ("quiesce", 3)]
THAW_ORDER = [("unquiesce", 3), ("unquiesce", 2), ("unquiesce", 1)]


def _positions(servers: list[dict[str, Any]]) -> dict[str, int]:
    return {s["site_server_id"]: n + 1 for n, s in enumerate(servers)}


def _group_snapshot_volumes(site: EmbeddedSite, group_snapshot_volumes: list[str]) -> set[str]:
    snapshots = SiteDriver(site.access()).call(
        "list snapshots", lambda c: list(c.block_storage.snapshots(details=True))
    )
    return {s.volume_id for s in snapshots if s.id in group_snapshot_volumes}


def _site_volumes(site: EmbeddedSite) -> set[str]:
    listed = SiteDriver(site.access()).call(
        "list volumes", lambda c: list(c.block_storage.volumes(details=True))
    )
    return {v.id for v in listed}


def test_a_checkpoint_freezes_in_order_snapshots_once_and_thaws_in_reverse(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    start_worker("w1")
    source, servers, plan = protected_vnf(client, admin_token, two_sites)
    assert [len(m["volumes"]) for m in plan["members"]] == [1, 1, 1]
    assert plan["source_site"] == source.site_name
    assert plan["status"] == "ACTIVE"

    accepted = take_checkpoint(client, admin_token, plan["id"])
    operation = wait_operation(client, admin_token, accepted["operation"]["id"])
    assert operation["status"] == "succeeded", operation

    checkpoint = show_checkpoint(client, admin_token, accepted["checkpoint"]["id"])
    assert checkpoint["status"] == "available"
    volumes = {v for m in plan["members"] for v in m["volumes"]}
    assert {v["volume"] for v in checkpoint["volumes"]} == volumes
    snapshot_ids = [v["snapshot"] for v in checkpoint["volumes"]]
    assert _group_snapshot_volumes(source, snapshot_ids) == volumes
    frozen_from, point, thawed_at = (
        datetime.fromisoformat(checkpoint[key])
        for key in ("frozen_from", "consistency_point", "thawed_at")
    )  # the site gives the group snapshot's time in whole seconds
    assert frozen_from.replace(microsecond=0) <= point <= thawed_at
    assert checkpoint["freeze_window_s"] > 0
    assert freezes_and_thaws(source, _positions(servers)) == FREEZE_ORDER + THAW_ORDER
    assert frozen_now(source) == []
    listed = client.get("/v1/servers", headers={"X-Auth-Token": admin_token}).json()["servers"]
    assert {s["status"] for s in listed} == {"ACTIVE"}
    tenant = make_tenant(client, admin_token)
    hidden_from(client, tenant, f"/v1/protection-plans/{plan['id']}", "protection plan")
    hidden_from(client, tenant, f"/v1/checkpoints/{checkpoint['id']}", "checkpoint")

    deleted = client.delete(
        f"/v1/protection-plans/{plan['id']}", headers={"X-Auth-Token": admin_token}
    )
    assert deleted.status_code == 202, deleted.text
    operation = wait_operation(client, admin_token, deleted.json()["operation"]["id"])
    assert operation["status"] == "succeeded", operation
    gone = client.get(f"/v1/checkpoints/{checkpoint['id']}", headers={"X-Auth-Token": admin_token})
    assert gone.status_code == 404
    assert _group_snapshot_volumes(source, snapshot_ids) == set()
    assert _site_volumes(source) >= volumes  # the plan's group went, never its volumes


def test_a_failed_quiesce_thaws_what_was_frozen_and_fails_naming_the_server(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    start_worker("w1")
    source, servers, plan = protected_vnf(client, admin_token, two_sites, retention=1)
    sim_admin(source, "PUT", "/faults", quiesce_failures=[servers[1]["site_server_id"]])

    accepted = take_checkpoint(client, admin_token, plan["id"])
    operation = wait_operation(client, admin_token, accepted["operation"]["id"])
    assert operation["status"] == "failed"
    checkpoint = show_checkpoint(client, admin_token, accepted["checkpoint"]["id"])
    assert checkpoint["status"] == "failed"
    assert servers[1]["id"] in checkpoint["error"], checkpoint["error"]
    assert "guest agent did not answer" in checkpoint["error"]
    assert freezes_and_thaws(source, _positions(servers)) == [("quiesce", 1), ("unquiesce", 1)]
    assert frozen_now(source) == []

    sim_admin(source, "DELETE", "/faults")  # the plan is still usable: the next one succeeds
    kept = [available_checkpoint(client, admin_token, plan["id"]) for _ in range(2)]
    # retention 1: the newer one expired the older, at the site too; the failed one stays
    listed = client.get("/v1/checkpoints", headers={"X-Auth-Token": admin_token}).json()
    assert [c["id"] for c in listed["checkpoints"]] == [checkpoint["id"], kept[1]["id"]]
    older = [v["snapshot"] for v in kept[0]["volumes"]]
    assert _group_snapshot_volumes(source, older) == set()
    newer = [v["snapshot"] for v in kept[1]["volumes"]]
    assert len(_group_snapshot_volumes(source, newer)) == 3


def test_a_barrier_not_reached_within_the_freeze_bound_is_given_up_and_thawed(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    start_worker("w1")
    source, servers, plan = protected_vnf(client, admin_token, two_sites, freeze_bound_s=0.5)
    sim_admin(source, "PUT", "/faults", latency={"compute": 1.0})  # one freeze outlasts it

    accepted = take_checkpoint(client, admin_token, plan["id"])
    assert wait_operation(client, admin_token, accepted["operation"]["id"])["status"] == "failed"
    checkpoint = show_checkpoint(client, admin_token, accepted["checkpoint"]["id"])
    assert "freeze bound (0.5 s)" in checkpoint["error"], checkpoint["error"]
    assert checkpoint["consistency_point"] is None
    assert frozen_now(source) == []
    events = freezes_and_thaws(source, _positions(servers))
    assert events == [("quiesce", 1), ("unquiesce", 1)]


def _group_snapshots(site: EmbeddedSite) -> list[str]:
    return SiteDriver(site.access()).call(
        "list group snapshots", lambda c: [g.id for g in cinder(c).group_snapshots()]
    )


def test_a_consistency_point_the_site_answers_after_the_bound_is_thawed_and_discarded(
    client: TestClient,
    admin_token: str,
    services: Services,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    """The group snapshot outlasts the bound: the freeze watchdog (every second here) thaws
    the three servers, last first, while the site still takes it; the snapshot that comes
    back is discarded and the checkpoint fails naming the watchdog."""
    start_worker("w1", CASCADE_FREEZE_WATCHDOG_INTERVAL="1")
    source, servers, plan = protected_vnf(client, admin_token, two_sites, freeze_bound_s=6.0)
    # Freezes of 1.5 s: the snapshot's call is made about 3 s after the first server is seen
    # frozen, time enough for a loaded machine to slow it first (half a second each was
    # once too little: the snapshot came back within the bound).
    sim_admin(source, "PUT", "/faults", latency={"compute": 1.5})
    accepted = take_checkpoint(client, admin_token, plan["id"])
    checkpoint_id = accepted["checkpoint"]["id"]
    _wait_mid_freeze(services, checkpoint_id, source)  # then the snapshot's call: 12 s
    sim_admin(source, "PUT", "/faults", latency={"compute": 1.5, "volume": 12.0})

    operation = wait_operation(client, admin_token, accepted["operation"]["id"], timeout=180)
    assert operation["status"] == "failed", operation
    checkpoint = show_checkpoint(client, admin_token, checkpoint_id)
    assert "freeze watchdog thawed the servers" in checkpoint["error"], checkpoint["error"]
    assert "(6 s)" in checkpoint["error"], checkpoint["error"]
    assert checkpoint["consistency_point"] is None
    assert frozen_now(source) == []
    assert freezes_and_thaws(source, _positions(servers)) == FREEZE_ORDER + THAW_ORDER
    sim_admin(source, "DELETE", "/faults")
    assert _group_snapshots(source) == []


def _wait_mid_freeze(services: Services, checkpoint_id: str, site: EmbeddedSite) -> None:
    """Until the site has frozen the first server and the group snapshot is not yet taken."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with services.db.session() as session:
            row = session.get_one(Checkpoint, checkpoint_id)
            snapshot_taken = row.site_group_snapshot_id is not None
        assert not snapshot_taken, "the snapshot was taken before the worker could be killed"
        if frozen_now(site):
            return
        time.sleep(0.05)
    raise AssertionError("no server was frozen within 60 s")


def _frozen_metric(client: TestClient, token: str, plan_id: str) -> float:
    """``cascade_protection_frozen_servers`` of the plan in ``/metrics`` (0 when absent)."""
    metrics = client.get("/metrics", headers={"X-Auth-Token": token}).text
    for line in metrics.splitlines():
        if line.startswith("cascade_protection_frozen_servers{") and plan_id in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_worker_killed_mid_freeze_is_resumed_by_another_that_thaws_in_reverse(
    client: TestClient,
    admin_token: str,
    services: Services,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    first = start_worker("w1")
    source, servers, plan = protected_vnf(client, admin_token, two_sites, freeze_bound_s=120.0)
    sim_admin(source, "PUT", "/faults", latency={"compute": 1.0})  # each freeze takes a second

    accepted = take_checkpoint(client, admin_token, plan["id"])
    checkpoint_id = accepted["checkpoint"]["id"]
    _wait_mid_freeze(services, checkpoint_id, source)
    assert _frozen_metric(client, admin_token, plan["id"]) >= 1.0
    first.kill()
    start_worker("w2")
    operation = wait_operation(client, admin_token, accepted["operation"]["id"], timeout=180)
    checkpoint = show_checkpoint(client, admin_token, checkpoint_id)
    assert checkpoint["status"] in ("failed", "available"), checkpoint
    assert operation["status"] == ("failed" if checkpoint["status"] == "failed" else "succeeded")

    assert frozen_now(source) == []
    assert _frozen_metric(client, admin_token, plan["id"]) == 0.0
    events = freezes_and_thaws(source, _positions(servers))
    frozen = [position for action, position in events if action == "quiesce"]
    assert frozen, events
    assert frozen == sorted(frozen), events
    assert events == [("quiesce", p) for p in frozen] + [("unquiesce", p) for p in reversed(frozen)]
