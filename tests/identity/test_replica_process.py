"""``cascade identity-replica`` beside a ``cascade up`` master: it bootstraps, follows changes
within a second, refuses writes naming the master, and keeps validating tokens and serving
reads with the master stopped."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from cascade.cli.embedded import EmbeddedCascade, EmbeddedReplica
from cascade.identity.render import password_auth

PASSWORD = "replica-test-admin-password"


def login(url: str, user: str, password: str, project: str | None = "admin") -> str:
    answer = httpx.post(
        f"{url}/identity/v3/auth/tokens", json=password_auth(user, password, project)
    )
    assert answer.status_code == 201, answer.text
    return answer.headers["X-Subject-Token"]


def validates(url: str, admin: str, token: str) -> bool:
    answer = httpx.get(
        f"{url}/identity/v3/auth/tokens", headers={"X-Auth-Token": admin, "X-Subject-Token": token}
    )
    return answer.status_code == 200


def until(condition: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.timeout(120)
def test_replica_follows_refuses_writes_and_survives_the_master(tmp_path: Path) -> None:
    env = {"CASCADE_PASSWORD_HASH_ROUNDS": "4"}
    with EmbeddedCascade(tmp_path / "master", PASSWORD, env=env) as master:
        admin = login(master.url, "admin", PASSWORD)
        with EmbeddedReplica(tmp_path / "replica", master.url, PASSWORD) as replica:
            until(lambda: validates(replica.url, admin, admin), timeout=30)  # bootstrapped

            headers = {"X-Auth-Token": admin}
            user = httpx.post(
                f"{master.url}/identity/v3/users",
                json={"user": {"name": "alice", "password": "alice-pw", "domain_id": "default"}},
                headers=headers,
            )
            assert user.status_code == 201, user.text
            alice = login(master.url, "alice", "alice-pw", None)
            seen_in = until(lambda: validates(replica.url, admin, alice), timeout=5)
            assert seen_in < 1.0, f"a new user reached the replica after {seen_in:.2f} s"

            revoked = httpx.delete(
                f"{master.url}/identity/v3/auth/tokens",
                headers={**headers, "X-Subject-Token": alice},
            )
            assert revoked.status_code == 204, revoked.text
            gone_in = until(lambda: not validates(replica.url, admin, alice), timeout=5)
            assert gone_in < 1.0, f"a revocation reached the replica after {gone_in:.2f} s"

            write = httpx.post(
                f"{replica.url}/identity/v3/projects",
                json={"project": {"name": "nope", "domain_id": "default"}},
                headers=headers,
            )
            assert write.status_code == 403, write.text
            assert master.url in write.json()["error"]["message"]

            master.stop()
            assert validates(replica.url, admin, admin)  # cut off: still validates
            projects = httpx.get(f"{replica.url}/identity/v3/projects", headers=headers)
            assert projects.status_code == 200, projects.text
            assert "admin" in {p["name"] for p in projects.json()["projects"]}
            fresh = login(replica.url, "admin", PASSWORD)  # and issues tokens of its own
            assert validates(replica.url, fresh, admin)
