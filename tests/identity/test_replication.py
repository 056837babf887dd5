"""Identity replication: a replica bootstraps from the master's snapshot, follows its change
log in order, validates tokens against its own copy, and resumes where it stopped."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cascade.db.models import IdentityReplica, utcnow
from cascade.identity import changelog
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
    assert metric(metrics, "cascade_identity_replica_lag_seconds", "site-a") > 0

    done = cascade("identity", "status", "--data-dir", str(services.settings.data_dir), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["name"] for r in report["replicas"]] == ["site-a"]
    assert report["replicas"][0]["behind"] > 0


def metric(text: str, name: str, replica: str) -> float:
    """The value of ``name`` for ``replica`` in a Prometheus text exposition (exactly one)."""
    prefix = f'{name}{{replica="{replica}"}} '
    found = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(found) == 1, (name, found)
    return float(found[0].split()[-1])


def test_a_replica_that_stops_polling_shows_a_growing_lag_and_is_flagged_silent(
    client: TestClient, admin_token: str, services: Services, replica: Services
) -> None:
    follower = follower_of(client, replica)
    follower.sync()
    follower.sync()
    headers = {"X-Auth-Token": admin_token}

    def listed() -> dict[str, Any]:
        answer = client.get("/identity-replica/v1/replicas", headers=headers)
        found: dict[str, Any] = answer.json()["replicas"][0]
        return found

    polling = listed()
    assert not polling["silent"]
    assert polling["seen_s"] < 5
    assert polling["lag_s"] == 0.0

    # It stops polling: its last poll was longer ago than a following replica ever waits.
    silence = changelog.SILENT_AFTER_S + 30
    with services.db.session() as session:
        row = session.get(IdentityReplica, "site-a")
        assert row is not None
        row.seen_at = utcnow() - timedelta(seconds=silence)
    first = listed()
    time.sleep(0.3)
    later = listed()
    assert first["silent"]
    assert later["silent"]
    assert first["behind"] == 0  # nothing changed at the master: still it may be stale
    assert first["seen_s"] >= silence
    assert later["seen_s"] >= first["seen_s"] + 0.25  # grows while it stays silent
    assert first["lag_s"] >= first["seen_s"]
    assert later["lag_s"] >= first["lag_s"] + 0.25

    make_tenant(client, admin_token)  # changes it misses: behind, lag still its silence
    missed = listed()
    assert missed["behind"] > 0
    assert missed["lag_s"] >= silence

    metrics = client.get("/metrics", headers=headers).text
    assert metric(metrics, "cascade_identity_replica_last_poll_age_seconds", "site-a") >= silence
    assert metric(metrics, "cascade_identity_replica_lag_seconds", "site-a") >= silence
    done = cascade("identity", "status", "--data-dir", str(services.settings.data_dir), "--json")
    assert done.returncode == 0, done.stderr
    assert "silent" in done.stdout
    reported = json.loads(done.stdout.strip().splitlines()[-1])["replicas"][0]
    assert reported["silent"]
    assert reported["lag_s"] >= silence

    follower.sync()  # it polls again: not silent, and caught up on the next poll
    follower.sync()
    back = listed()
    assert not back["silent"]
    assert (back["behind"], back["lag_s"]) == (0, 0.0)
