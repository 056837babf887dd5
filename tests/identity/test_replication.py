"""Identity replication: a replica bootstraps from the master's snapshot, follows its change
log in order, validates tokens against its own copy, and resumes where it stopped."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cascade.identity.follower import Follower, Master
from cascade.identity.replica import export_rows
from cascade.identity.tokens import TokenError
from cascade.services import Services, initialize
from tests.cli.test_cli import cascade
from tests.conftest import ADMIN_PASSWORD, make_settings, make_tenant
from tests.identity.in_process import InProcess


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[Services]:
    services = Services(make_settings(tmp_path / "replica"))
    initialize(services, None)
    yield services
    services.close()


def follower_of(client: TestClient, replica: Services, link: InProcess | None = None) -> Follower:
    master = Master(str(client.base_url), "admin", ADMIN_PASSWORD)
    return Follower(
        replica.db,
        replica.keys,
        replica.node_key,
        master,
        "site-a",
        on_keys=replica.tokens.reload_keys,
        link=link or InProcess(client),
    )


def tables(services: Services) -> dict[str, Any]:
    return export_rows(services.db)["tables"]


def test_replica_follows_the_master_exactly(
    client: TestClient, admin_token: str, services: Services, replica: Services
) -> None:
    follower = follower_of(client, replica)
    tenant = make_tenant(client, admin_token)
    assert follower.sync() > 0  # bootstrap: the whole snapshot
    assert tables(replica) == tables(services)
    replica.check_token(tenant.token)  # validated against the replica's own copy

    headers = {"X-Auth-Token": admin_token}
    other = make_tenant(client, admin_token)  # users, projects, assignments: new rows
    client.delete("/identity/v3/auth/tokens", headers={**headers, "X-Subject-Token": tenant.token})
    disabled = client.patch(
        f"/identity/v3/users/{other.user_id}", json={"user": {"enabled": False}}, headers=headers
    )
    assert disabled.status_code == 200, disabled.text
    applied = follower.sync()
    assert applied > 0
    assert tables(replica) == tables(services)
    for token in (tenant.token, other.token):  # revoked, and its user disabled
        with pytest.raises(TokenError):
            replica.check_token(token)
    position = follower.position()
    assert position is not None
    assert position.behind == 0

    # Resume: a new follower (as after a restart) applies nothing twice...
    again = follower_of(client, replica)
    assert again.sync() == 0
    resumed = again.position()
    assert resumed is not None
    assert (resumed.seq, resumed.applied_at) == (position.seq, position.applied_at)
    # ...and exactly what came after its position.
    deleted = client.delete(f"/identity/v3/projects/{other.project_id}", headers=headers)
    assert deleted.status_code == 204, deleted.text
    assert again.sync() > 0
    assert tables(replica) == tables(services)


def test_long_poll_waits_for_news_then_answers_empty(client: TestClient, replica: Services) -> None:
    follower = follower_of(client, replica)
    follower.sync()
    started = time.monotonic()
    assert follower.sync(wait=0.3) == 0
    assert time.monotonic() - started >= 0.3


def test_a_refused_token_is_replaced_by_a_new_login(
    client: TestClient, admin_token: str, replica: Services
) -> None:
    link = InProcess(client)
    follower = follower_of(client, replica, link)
    follower.sync()
    refused = link.sent[-1].headers["X-Auth-Token"]
    revoked = client.delete(
        "/identity/v3/auth/tokens",
        headers={"X-Auth-Token": admin_token, "X-Subject-Token": refused},
    )
    assert revoked.status_code == 204, revoked.text
    make_tenant(client, admin_token)
    assert follower.sync() > 0  # refused once (401), logged in again, answered
    statuses = [(r.method, r.path_url.split("?")[0]) for r in link.sent[-3:]]
    assert statuses == [
        ("GET", "/identity-replica/v1/changes"),
        ("POST", "/identity/v3/auth/tokens"),
        ("GET", "/identity-replica/v1/changes"),
    ]
    assert link.sent[-1].headers["X-Auth-Token"] != refused


def test_replication_needs_an_admin(client: TestClient, admin_token: str) -> None:
    tenant = make_tenant(client, admin_token)
    node_key = "A" * 43 + "="
    for path in (
        f"/identity-replica/v1/snapshot?replica=site-a&public_key={node_key}",
        "/identity-replica/v1/changes",
        "/identity-replica/v1/keys?replica=site-a",
        "/identity-replica/v1/replicas",
    ):
        assert client.get(path, headers={"X-Auth-Token": tenant.token}).status_code == 403
        assert client.get(path).status_code == 401


def test_the_master_reports_each_replicas_lag(
    client: TestClient, admin_token: str, replica: Services
) -> None:
    follower = follower_of(client, replica)
    follower.sync()  # bootstrap
    follower.sync()  # a poll: the master learns the replica's position
    headers = {"X-Auth-Token": admin_token}
    report = client.get("/identity-replica/v1/replicas", headers=headers).json()
    assert [(r["name"], r["behind"], r["lag_s"]) for r in report["replicas"]] == [
        ("site-a", 0, 0.0)
    ]
    make_tenant(client, admin_token)  # changes the replica has not seen
    time.sleep(0.05)
    lagging = client.get("/identity-replica/v1/replicas", headers=headers).json()["replicas"][0]
    assert lagging["behind"] > 0
    assert lagging["lag_s"] >= 0.05
    follower.sync()
    follower.sync()
    caught_up = client.get("/identity-replica/v1/replicas", headers=headers).json()["replicas"][0]
    assert caught_up["behind"] == 0
    assert caught_up["seq"] == report["head"] + lagging["behind"]


def test_lag_is_a_metric_and_a_cli_report(
    client: TestClient, admin_token: str, services: Services, replica: Services
) -> None:
    follower = follower_of(client, replica)
    follower.sync()
    follower.sync()
    make_tenant(client, admin_token)
    metrics = client.get("/metrics", headers={"X-Auth-Token": admin_token}).text
    behind = [
        line
        for line in metrics.splitlines()
        if line.startswith('cascade_identity_replica_behind{replica="site-a"}')
    ]
    assert len(behind) == 1
    assert float(behind[0].split()[-1]) > 0
    assert 'cascade_identity_replica_lag_seconds{replica="site-a"}' in metrics

    done = cascade("identity", "status", "--data-dir", str(services.settings.data_dir), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["name"] for r in report["replicas"]] == ["site-a"]
    assert report["replicas"][0]["behind"] > 0
