"""Replication policies at real site-sims with a real worker, checked AT the sites (their Nova
and Neutron APIs), not from Cascade's own record: flavors with extra specs, security groups
with a remote-group rule (remapped to the target's group id) and keypairs replicated from
site A; a flavor name taken at site B by a different flavor fails that item only, naming
the site and the flavor; drift injected behind Cascade's back at site B (a deleted group, a
changed rule, an extra keypair) found and repaired by the audit; resources gone from the
source deleted at the targets; a third site registered later receives everything; the
drift shown in the API, ``/metrics`` and ``cascade replication status``, a job's items
by ``cascade replication job``; with the source
down a job fails saying so and nothing is deleted at the targets."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openstack.connection import Connection
from sqlalchemy import text
from typer.testing import CliRunner

from cascade.cli.embedded import EmbeddedSite
from cascade.cli.main import app
from cascade.cli.replication import policy_table, site_state
from cascade.engine import dbos_private
from cascade.engine.queue import TRANSFERS_QUEUE
from cascade.replication.keypairs import fingerprint
from cascade.replication.policies import PolicyService
from cascade.services import Services
from cascade.sites.driver import SiteDriver
from tests.conftest import hidden_from, make_tenant
from tests.engine.conftest import (
    WorkerFactory,
    at_site,
    public_key,
    register,
    start_site,
    wait_operation,
)

DEADLINE = 90.0
IMAGES = {"rep-image-1": 3 << 20, "rep-image-2": 1 << 20}
Json = dict[str, Any]


def call(site: EmbeddedSite, what: str, fn: Callable[[Connection], Any]) -> Any:
    return SiteDriver(site.access()).call(what, fn)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def flavors(site: EmbeddedSite) -> dict[str, Any]:
    return call(site, "list flavors", lambda c: {f.name: f for f in c.compute.flavors()})


def groups(site: EmbeddedSite) -> dict[str, Any]:
    def listing(c: Connection) -> dict[str, Any]:
        project = c.current_project_id
        return {g.name: g for g in c.network.security_groups() if g.project_id == project}

    return call(site, "list security groups", listing)


def keypairs(site: EmbeddedSite) -> set[str]:
    return call(site, "list keypairs", lambda c: {k.name for k in c.compute.keypairs()})


def port_rules(group: Any) -> list[Json]:
    return [r for r in group.security_group_rules if r["protocol"] == "tcp"]


def seed_source(site: EmbeddedSite) -> None:
    """Site A: two flavors (one with extra specs), two images with properties, groups web
    and db (db admits 5432 from web's members)."""

    def seed(c: Connection) -> None:
        c.compute.create_flavor(id="rep-1", name="rep.small", vcpus=1, ram=256, disk=1)
        c.compute.create_flavor_extra_specs("rep-1", {"hw:cpu_policy": "dedicated"})
        c.compute.create_flavor(id="rep-2", name="taken", vcpus=2, ram=512, disk=1)
        web = c.network.create_security_group(name="web", description="front")
        db = c.network.create_security_group(name="db", description="back")
        for name, size in IMAGES.items():
            c.image.create_image(
                name=name,
                data=os.urandom(size),
                disk_format="raw",
                container_format="bare",
                min_ram=64,
                tier="gold",
            )
        c.network.create_security_group_rule(
            security_group_id=db.id,
            direction="ingress",
            protocol="tcp",
            port_range_min=5432,
            port_range_max=5432,
            remote_group_id=web.id,
        )

    call(site, "seed the source", seed)


@pytest.fixture
def third_site() -> Iterator[list[EmbeddedSite]]:
    started: list[EmbeddedSite] = []
    yield started
    for site in started:
        site.stop()


def post_policy(client: TestClient, token: str, **body: Any) -> Any:
    return client.post("/v1/replication/policies", headers={"X-Auth-Token": token}, json=body)


def refuse_bad_policies(client: TestClient, admin_token: str) -> None:
    """Each refused with a 400 naming what is wrong, before anything is queued."""
    cases = [
        ({"kind": "routers", "source_site": "site-a"}, "'routers'"),
        ({"kind": "flavors", "source_site": "site-a", "conflict": "coin"}, "'coin'"),
        ({"kind": "flavors", "source_site": "nowhere"}, "'nowhere'"),
        ({"kind": "flavors", "source_site": "site-a", "sites": ["site-z"]}, "'site-z'"),
        ({"kind": "flavors"}, "source_site"),
        ({"kind": "keypairs", "source_site": "site-a"}, "no source site"),
        ({"kind": "flavors", "source_site": "site-a", "sites": ["site-a"]}, "site-a"),
    ]
    for body, named in cases:
        response = post_policy(client, admin_token, **body)
        assert response.status_code == 400, (body, response.text)
        assert named in response.json()["error"]["message"], (body, response.text)
    listed = client.get("/v1/replication/policies", headers={"X-Auth-Token": admin_token})
    assert listed.json() == {"policies": []}


def test_policies_replicate_audit_repairs_and_a_new_site_receives_everything(
    client: TestClient,
    admin_token: str,
    services: Services,
    tmp_path: Path,
    two_sites: list[EmbeddedSite],
    third_site: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    site_a, site_b = two_sites
    headers = {"X-Auth-Token": admin_token}
    refuse_bad_policies(client, admin_token)
    seed_source(site_a)
    call(
        site_b,
        "a local flavor named taken",
        lambda c: c.compute.create_flavor(id="local-9", name="taken", vcpus=8, ram=1024, disk=2),
    )
    key = public_key()
    created = client.post("/v1/keypairs", headers=headers, json={"name": "k1", "public_key": key})
    assert created.status_code == 202, created.text
    # A job gives up on a source that stays down after 3 s (test_source_wait: the waiting).
    # One image copy at a time in the cluster (transfers_never_overlap).
    start_worker(
        "w1",
        CASCADE_CONVERGENCE_INTERVAL="2",
        CASCADE_REPLICATION_SOURCE_WAIT="3",
        CASCADE_TRANSFER_CONCURRENCY="1",
    )
    assert wait_operation(client, admin_token, created.json()["operation"]["id"])["status"] == (
        "succeeded"
    )

    policies = {}
    for kind in ("flavors", "security_groups", "keypairs", "images"):
        extra: Json = {"source_site": "site-a"} if kind != "keypairs" else {}
        if kind == "images":
            extra["bandwidth_limit"] = 64 << 20
        response = post_policy(client, admin_token, kind=kind, conflict="cascade_wins", **extra)
        assert response.status_code == 202, response.text
        accepted = response.json()
        targets = ["site-a", "site-b"] if kind == "keypairs" else ["site-b"]
        assert accepted["policy"]["sites"] == targets, accepted
        policies[kind] = accepted
    again = post_policy(client, admin_token, kind="flavors", source_site="site-a")
    assert again.status_code == 409, again.text

    # Flavors: the one whose name site B has for another flavor fails, naming both; the rest
    # is there with its extra specs.
    flavor_op = wait_operation(client, admin_token, policies["flavors"]["operation"]["id"])
    assert flavor_op["status"] == "failed", flavor_op
    assert "site site-b: flavor taken: conflict" in flavor_op["error"], flavor_op
    jobs = client.get(
        "/v1/replication/jobs",
        headers=headers,
        params={"policy": policies["flavors"]["policy"]["id"]},
    )
    (first,) = [j for j in jobs.json()["jobs"] if j["operation"] == flavor_op["id"]]
    assert first["reason"] == "created"
    job = client.get(f"/v1/replication/jobs/{first['id']}", headers=headers)
    items = {i["name"]: i for i in job.json()["job"]["items"]}
    assert items["taken"]["status"] == "error", items
    assert "site site-b: flavor taken" in items["taken"]["error"], items
    assert items["rep.small"] == {**items["rep.small"], "status": "done", "action": "create"}
    at_b = flavors(site_b)
    assert at_b["rep.small"].id == "rep-1"
    assert at_b["rep.small"].extra_specs == {"hw:cpu_policy": "dedicated"}
    assert at_b["taken"].id == "local-9", "a flavor Cascade did not put there was changed"
    tenant = make_tenant(client, admin_token)
    flavors_policy = policies["flavors"]["policy"]["id"]
    hidden_from(client, tenant, f"/v1/replication/policies/{flavors_policy}", "replication policy")
    hidden_from(client, tenant, f"/v1/replication/jobs/{first['id']}", "replication job")

    # Security groups: db's rule names site B's own web group; keypairs: k1 is there.
    for kind in ("security_groups", "keypairs", "images"):
        done = wait_operation(client, admin_token, policies[kind]["operation"]["id"])
        assert done["status"] == "succeeded", done
    check_groups(site_a, site_b)
    assert at_site(site_b, "k1") == fingerprint(key)
    images_job = check_images(client, headers, site_a, site_b, done["id"])
    transfers_never_overlap(services, len(IMAGES))
    followed = replication_cli(services, "job", images_job, "--follow")
    assert f"job {images_job}: succeeded (created)" in followed
    assert "rep-image-1" in followed
    assert "100%" in followed

    # Drift behind Cascade's back at site B: web deleted (db's rule goes with it), a rule
    # added to db, an extra keypair: the audit finds each and repairs it.
    def inject(c: Connection) -> None:
        found = {g.name: g for g in c.network.security_groups()}
        c.network.delete_security_group(found["web"].id)
        c.network.create_security_group_rule(
            security_group_id=found["db"].id, direction="ingress", protocol="tcp",
            port_range_min=22, port_range_max=22,
        )  # fmt: skip
        c.compute.create_keypair(name="intruder", public_key=public_key())

    call(site_b, "inject drift", inject)
    wait_for(lambda: drift_seen(services, "site-b"), "the audit to see the drift")
    wait_for(lambda: "intruder" not in keypairs(site_b), "the extra keypair removed")
    wait_for(lambda: groups_match(site_a, site_b), "the groups repaired")
    check_groups(site_a, site_b)

    # Changed at the source: an extra spec set there is set at the target by a job run on
    # demand (or the audit's, whichever starts first).
    call(
        site_a,
        "change rep.small",
        lambda c: c.compute.create_flavor_extra_specs("rep-1", {"hw:numa_nodes": "1"}),
    )
    wait_for(lambda: run_policy(client, headers, policies["flavors"]["policy"]["id"]), "a job")
    wanted = {"hw:cpu_policy": "dedicated", "hw:numa_nodes": "1"}
    wait_for(lambda: flavors(site_b)["rep.small"].extra_specs == wanted, "the new extra spec")

    # Gone from the source: deleted at the target (only what Cascade put there).
    def remove_at_source(c: Connection) -> None:
        c.compute.delete_flavor("rep-1")
        c.network.delete_security_group(groups(site_a)["db"].id)

    call(site_a, "delete at the source", remove_at_source)
    wait_for(lambda: "rep.small" not in flavors(site_b), "rep.small deleted at site B")
    wait_for(lambda: "db" not in groups(site_b), "db deleted at site B")
    assert flavors(site_b)["taken"].id == "local-9"

    # A site registered later receives everything its policies say.
    third_site.append(start_site("site-c", tmp_path))
    register(client, admin_token, third_site[0])
    site_c = third_site[0]
    wait_for(lambda: "k1" in keypairs(site_c), "k1 at site C")
    wait_for(lambda: "web" in groups(site_c), "web at site C")
    wait_for(lambda: "taken" in flavors(site_c), "the source's flavors at site C")
    assert flavors(site_c)["taken"].id == "rep-2"
    wait_for(lambda: set(IMAGES) <= set(images(site_c)), "the images at site C")
    removed = client.delete("/v1/keypairs/k1", headers=headers)
    assert removed.status_code == 202, removed.text
    wait_for(lambda: not {"k1"} & (keypairs(site_b) | keypairs(site_c)), "k1 deleted everywhere")
    reasons = {
        j["reason"] for j in client.get("/v1/replication/jobs", headers=headers).json()["jobs"]
    }
    assert {"created", "audit", "site_joined"} <= reasons, reasons

    # The drift as the API, /metrics and the CLI show it.
    shown = client.get(
        f"/v1/replication/policies/{policies['flavors']['policy']['id']}", headers=headers
    )
    view = shown.json()["policy"]
    assert view["sites"] == ["site-b", "site-c"]
    wait_for(lambda: flavor_drift(client, headers, view["id"]), "the audit at site C")
    view = client.get(f"/v1/replication/policies/{view['id']}", headers=headers).json()["policy"]
    assert view["drift"]["site-b"]["changed"] == ["taken"], view
    assert view["last_job"] is not None
    metrics = client.get("/metrics", headers=headers).text
    assert (
        f'cascade_replication_drift{{drift="changed",kind="flavors",policy="{view["id"]}"}} 1.0'
        in metrics
    )
    listed = PolicyService(services.db, services.operations).listing(None)
    flavor_policy = next(p for p in listed if p.kind == "flavors")
    assert site_state(flavor_policy.drift["site-b"]) == "changed: taken"
    assert policy_table(listed).row_count == 2 + 2 + 2 + 3  # keypairs: every site, A too
    status = replication_cli(services, "status")
    assert "changed: taken" in status
    assert "4 policies" in status

    # The source down past the job's wait: it fails saying so, nothing deleted at the targets.
    site_a.stop()
    groups_policy = policies["security_groups"]["policy"]["id"]
    run = wait_for(lambda: run_policy(client, headers, groups_policy), "a job to start")
    failed = wait_operation(client, admin_token, run["operation"]["id"])
    assert failed["status"] == "failed", failed
    assert "site site-a" in failed["error"], failed
    assert run["job"]["reason"] == "requested"
    assert set(groups(site_b)) == {"default", "web"}
    assert "web" in groups(site_c)


def replication_cli(services: Services, *args: str) -> str:
    """``cascade replication ARGS`` in this process, on the test's data dir; its output."""
    data_dir = str(services.settings.data_dir)
    done = CliRunner().invoke(
        app, ["replication", *args, "--data-dir", data_dir], env={"COLUMNS": "240"}
    )
    assert done.exit_code == 0, done.output
    return done.output


def run_policy(client: TestClient, headers: dict[str, str], policy_id: str) -> Json | None:
    """A job of the policy started on demand (None while another job of it runs)."""
    response = client.post(f"/v1/replication/policies/{policy_id}/jobs", headers=headers)
    if response.status_code == 409:
        return None
    assert response.status_code == 202, response.text
    accepted: Json = response.json()
    return accepted


def images(site: EmbeddedSite) -> dict[str, Any]:
    return call(site, "list images", lambda c: {i.name: i for i in c.image.images()})


def check_images(
    client: TestClient, headers: dict[str, str], a: EmbeddedSite, b: EmbeddedSite, op: str
) -> str:
    """Each image at B has A's bytes (Glance's hashes) and properties; its job item shows
    every byte done. Returns the job's id."""
    at_a, at_b = images(a), images(b)
    for name in IMAGES:
        assert at_b[name].hash_value == at_a[name].hash_value, name
        assert at_b[name].id != at_a[name].id
        assert at_b[name].min_ram == 64
        assert at_b[name].properties["tier"] == at_a[name].properties["tier"] == "gold"
    (job,) = client.get("/v1/replication/jobs", headers=headers).json()["jobs"][:1]
    assert job["operation"] == op, job
    shown = client.get(f"/v1/replication/jobs/{job['id']}", headers=headers).json()["job"]
    items = {i["name"]: i for i in shown["items"]}
    for name, size in IMAGES.items():
        item = items[name]
        assert (item["status"], item["action"], item["percent"]) == ("done", "create", 100.0)
        assert item["bytes_done"] == item["bytes_total"] == at_a[name].size == size
    return str(job["id"])


def transfers_never_overlap(services: Services, at_least: int) -> None:
    """The image copies ran one at a time, as ``transfer_concurrency`` 1 asks: the copy
    steps of the workflows on the transfers queue, from start to end as DBOS recorded them
    (milliseconds), are disjoint (both images are enqueued at once: without the limit they
    overlap)."""
    outputs = dbos_private.table(services.db, "operation_outputs")
    statuses = dbos_private.table(services.db, "workflow_status")
    with services.db.engine.connect() as connection:
        windows = connection.execute(
            text(
                "SELECT o.started_at_epoch_ms, o.completed_at_epoch_ms "  # noqa: S608
                f"FROM {outputs} o JOIN {statuses} w "
                "ON w.workflow_uuid = o.workflow_uuid "
                "WHERE w.queue_name = :queue AND o.function_name = 'cascade.step' "
                "ORDER BY o.started_at_epoch_ms"
            ),
            {"queue": TRANSFERS_QUEUE},
        ).all()
    assert len(windows) >= at_least, windows
    for (_start, end), (next_start, _end) in pairwise(windows):
        assert end <= next_start, windows


def flavor_drift(client: TestClient, headers: dict[str, str], policy_id: str) -> bool:
    view = client.get(f"/v1/replication/policies/{policy_id}", headers=headers).json()["policy"]
    return "site-c" in view["drift"] and not view["drift"]["site-c"]["missing"]


def drift_seen(services: Services, site: str) -> bool:
    listed = PolicyService(services.db, services.operations).listing(None)
    return any(
        p.drift.get(site)
        and (p.drift[site].missing or p.drift[site].extra or p.drift[site].changed)
        for p in listed
    )


def remote_names(site: EmbeddedSite) -> dict[str, list[tuple[int, str | None]]]:
    """Per group, its TCP rules as (port, remote group's name)."""
    found = groups(site)
    names = {g.id: name for name, g in found.items()}
    return {
        name: sorted((r["port_range_min"], names.get(r["remote_group_id"])) for r in port_rules(g))
        for name, g in found.items()
        if name != "default"
    }


def groups_match(site_a: EmbeddedSite, site_b: EmbeddedSite) -> bool:
    return remote_names(site_a) == remote_names(site_b)


def check_groups(site_a: EmbeddedSite, site_b: EmbeddedSite) -> None:
    at_a, at_b = groups(site_a), groups(site_b)
    assert remote_names(site_b) == {"db": [(5432, "web")], "web": []}
    (rule,) = port_rules(at_b["db"])
    assert rule["remote_group_id"] == at_b["web"].id != at_a["web"].id
    assert at_b["web"].description == "front"
