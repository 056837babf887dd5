"""The partition contract (docs/partitions.md), line by line: a replica cut off from the
master keeps validating tokens, serving reads and issuing tokens, refuses every identity write
naming the master, does not see what changed at the master meanwhile (a revocation, a
disabled user, a changed password), is shown lagging at the master, and when the link
returns it catches up by itself to exactly the master's data."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cascade.cli.embedded import EmbeddedCascade, EmbeddedReplica
from cascade.db import Database
from cascade.identity.render import password_auth
from cascade.identity.replica import export_rows
from tests.identity.link import Link
from tests.identity.test_replica_process import PASSWORD, login, until, validates


def identity_rows(data_dir: Path) -> dict[str, object]:
    db = Database(f"sqlite:///{data_dir / 'cascade.db'}")
    try:
        return export_rows(db)["tables"]
    finally:
        db.dispose()


def login_status(url: str, user: str, password: str) -> int:
    """The status of an unscoped password login (201: a token issued)."""
    answer = httpx.post(f"{url}/identity/v3/auth/tokens", json=password_auth(user, password))
    return answer.status_code


def create_user(url: str, headers: dict[str, str], name: str) -> str:
    answer = httpx.post(
        f"{url}/identity/v3/users",
        json={"user": {"name": name, "password": f"{name}-pw", "domain_id": "default"}},
        headers=headers,
    )
    assert answer.status_code == 201, answer.text
    user_id: str = answer.json()["user"]["id"]
    return user_id


def replica_lag(master_url: str, headers: dict[str, str]) -> dict[str, Any]:
    """The master's report on its one replica."""
    answer = httpx.get(f"{master_url}/identity-replica/v1/replicas", headers=headers)
    assert answer.status_code == 200, answer.text
    replicas: list[dict[str, Any]] = answer.json()["replicas"]
    assert len(replicas) == 1
    return replicas[0]


def identity_writes(ids: dict[str, str]) -> list[tuple[str, str, dict[str, Any] | None]]:
    """One of every kind of identity write (method, path, body), on rows that exist."""
    grant = f"/projects/{ids['project']}/users/{ids['bob']}/roles/{ids['role']}"
    return [
        ("POST", "/projects", {"project": {"name": "p", "domain_id": "default"}}),
        ("PATCH", f"/projects/{ids['project']}", {"project": {"description": "changed"}}),
        ("DELETE", f"/projects/{ids['project']}", None),
        ("POST", "/users", {"user": {"name": "u", "password": "u-pw", "domain_id": "default"}}),
        ("PATCH", f"/users/{ids['bob']}", {"user": {"enabled": False}}),
        ("PATCH", f"/users/{ids['bob']}", {"user": {"password": "changed-pw"}}),
        ("DELETE", f"/users/{ids['bob']}", None),
        ("POST", "/domains", {"domain": {"name": "d"}}),
        ("POST", "/roles", {"role": {"name": "r"}}),
        ("DELETE", f"/roles/{ids['role']}", None),
        ("PUT", grant, None),
        ("POST", "/regions", {"region": {"id": "elsewhere"}}),
        ("POST", "/services", {"service": {"type": "compute", "name": "nova"}}),
    ]


@pytest.mark.timeout(120)
def test_a_cut_off_replica_keeps_serving_and_catches_up_after_the_link_returns(
    tmp_path: Path,
) -> None:
    env = {"CASCADE_PASSWORD_HASH_ROUNDS": "4"}
    with (
        EmbeddedCascade(tmp_path / "master", PASSWORD, env=env) as master,
        Link(master.port) as link,
        EmbeddedReplica(tmp_path / "replica", link.url, PASSWORD) as replica,
    ):
        admin = login(master.url, "admin", PASSWORD)
        headers = {"X-Auth-Token": admin}
        until(lambda: validates(replica.url, admin, admin), timeout=30)
        ids = {name: create_user(master.url, headers, name) for name in ("bob", "dave", "erin")}
        ids["project"] = httpx.get(
            f"{master.url}/identity/v3/projects", params={"name": "admin"}, headers=headers
        ).json()["projects"][0]["id"]
        ids["role"] = httpx.get(
            f"{master.url}/identity/v3/roles", params={"name": "member"}, headers=headers
        ).json()["roles"][0]["id"]
        bob_token = login(master.url, "bob", "bob-pw", None)
        until(lambda: validates(replica.url, admin, bob_token), timeout=5)
        until(lambda: login_status(replica.url, "erin", "erin-pw") == 201, timeout=5)
        assert replica_lag(master.url, headers)["behind"] == 0

        link.cut()
        # At the master, while the site is cut off: a revocation, a new user, a user
        # disabled, a password changed.
        revoked = httpx.delete(
            f"{master.url}/identity/v3/auth/tokens",
            headers={**headers, "X-Subject-Token": bob_token},
        )
        assert revoked.status_code == 204, revoked.text
        create_user(master.url, headers, "carol")
        for user, change in (("dave", {"enabled": False}), ("erin", {"password": "erin-new"})):
            changed = httpx.patch(
                f"{master.url}/identity/v3/users/{ids[user]}",
                json={"user": change},
                headers=headers,
            )
            assert changed.status_code == 200, changed.text
        assert login_status(master.url, "dave", "dave-pw") == 401
        assert login_status(master.url, "erin", "erin-pw") == 401
        lagging = replica_lag(master.url, headers)
        time.sleep(1.5)

        # The master shows the cut-off site lagging, more and more.
        later = replica_lag(master.url, headers)
        assert lagging["behind"] > 0
        assert later["behind"] == lagging["behind"]
        assert lagging["lag_s"] > 0
        assert later["lag_s"] >= lagging["lag_s"] + 1.0
        assert later["seen_s"] >= 1.5

        # Cut off: validates what it knows (the revocation has not reached it), reads, issues
        # tokens (to the disabled user and on the old password too), refuses every write
        # naming the master.
        assert validates(replica.url, admin, admin)
        assert validates(replica.url, admin, bob_token)
        users = httpx.get(f"{replica.url}/identity/v3/users", headers=headers).json()["users"]
        names = {u["name"] for u in users}
        assert {"admin", "bob", "dave", "erin"} <= names
        assert "carol" not in names
        assert validates(replica.url, admin, login(replica.url, "admin", PASSWORD))
        assert login_status(replica.url, "dave", "dave-pw") == 201
        assert login_status(replica.url, "erin", "erin-pw") == 201
        for method, path, body in identity_writes(ids):
            write = httpx.request(
                method, f"{replica.url}/identity/v3{path}", json=body, headers=headers
            )
            assert write.status_code == 403, (method, path, write.text)
            assert link.url in write.json()["error"]["message"], (method, path)
        revoke = httpx.delete(
            f"{replica.url}/identity/v3/auth/tokens",
            headers={**headers, "X-Subject-Token": bob_token},
        )
        assert revoke.status_code == 403, revoke.text

        link.restore()
        until(lambda: not validates(replica.url, admin, bob_token), timeout=15)
        until(lambda: identity_rows(replica.data_dir) == identity_rows(master.data_dir), 10)
        assert login_status(replica.url, "dave", "dave-pw") == 401
        assert login_status(replica.url, "erin", "erin-pw") == 401
        assert login_status(replica.url, "erin", "erin-new") == 201
        assert login_status(replica.url, "carol", "carol-pw") == 201
        until(lambda: replica_lag(master.url, headers)["behind"] == 0, timeout=15)
