"""Identity replication: a replica bootstraps from the master's snapshot, follows its change
log in order, validates tokens against its own copy, and resumes where it stopped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cascade.identity.follower import Follower, Master
from cascade.identity.replica import export_snapshot
from cascade.identity.tokens import TokenError
from cascade.services import Services, initialize
from tests.conftest import ADMIN_PASSWORD, make_settings, make_tenant


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[Services]:
    services = Services(make_settings(tmp_path / "replica"))
    initialize(services, None)
    yield services
    services.close()


def follower_of(client: TestClient, replica: Services) -> Follower:
    master = Master(str(client.base_url), "admin", ADMIN_PASSWORD)
    return Follower(
        replica.db, replica.keys, master, http=client, on_keys=replica.tokens.reload_keys
    )


def tables(services: Services) -> dict[str, Any]:
    return export_snapshot(services.db, services.keys)["tables"]


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


def test_replication_needs_an_admin(client: TestClient, admin_token: str) -> None:
    tenant = make_tenant(client, admin_token)
    for path in ("/identity-replica/v1/snapshot", "/identity-replica/v1/changes"):
        assert client.get(path, headers={"X-Auth-Token": tenant.token}).status_code == 403
        assert client.get(path).status_code == 401
