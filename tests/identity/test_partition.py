"""The partition contract (docs/partitions.md), line by line: a replica cut off from the
master keeps validating tokens, serving reads and issuing tokens, refuses writes naming the
master, and when the link returns it catches up by itself to exactly the master's data."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from cascade.cli.embedded import EmbeddedCascade, EmbeddedReplica
from cascade.db import Database
from cascade.identity.replica import export_rows
from tests.identity.link import Link
from tests.identity.test_replica_process import PASSWORD, login, until, validates


def identity_rows(data_dir: Path) -> dict[str, object]:
    db = Database(f"sqlite:///{data_dir / 'cascade.db'}")
    try:
        return export_rows(db)["tables"]
    finally:
        db.dispose()


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
        bob = httpx.post(
            f"{master.url}/identity/v3/users",
            json={"user": {"name": "bob", "password": "bob-pw", "domain_id": "default"}},
            headers=headers,
        )
        assert bob.status_code == 201, bob.text
        bob_token = login(master.url, "bob", "bob-pw", None)
        until(lambda: validates(replica.url, admin, bob_token), timeout=5)

        link.cut()
        # At the master, while the site is cut off: a revocation and a new user.
        revoked = httpx.delete(
            f"{master.url}/identity/v3/auth/tokens",
            headers={**headers, "X-Subject-Token": bob_token},
        )
        assert revoked.status_code == 204, revoked.text
        carol = httpx.post(
            f"{master.url}/identity/v3/users",
            json={"user": {"name": "carol", "password": "carol-pw", "domain_id": "default"}},
            headers=headers,
        )
        assert carol.status_code == 201, carol.text
        time.sleep(1.5)

        # Cut off: validates what it knows (the revocation has not reached it), reads, issues
        # tokens, refuses writes naming the master.
        assert validates(replica.url, admin, admin)
        assert validates(replica.url, admin, bob_token)
        users = httpx.get(f"{replica.url}/identity/v3/users", headers=headers).json()["users"]
        assert "carol" not in {u["name"] for u in users}
        assert validates(replica.url, admin, login(replica.url, "admin", PASSWORD))
        write = httpx.post(
            f"{replica.url}/identity/v3/projects",
            json={"project": {"name": "p", "domain_id": "default"}},
            headers=headers,
        )
        assert write.status_code == 403
        assert link.url in write.json()["error"]["message"]

        link.restore()
        until(lambda: not validates(replica.url, admin, bob_token), timeout=15)
        until(lambda: identity_rows(replica.data_dir) == identity_rows(master.data_dir), 10)
