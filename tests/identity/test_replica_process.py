"""``cascade identity-replica`` beside a ``cascade up`` master: it bootstraps, follows changes
within a second, refuses writes naming the master, and keeps validating tokens and serving
reads with the master stopped. Credentials the master refuses end it with one line and exit
1 (at start, or when refused for good later); SIGINT or SIGTERM stop it within two seconds
whatever its follower waits on (a long poll, a master that never answers, a cut link)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from cascade.cli.embedded import EmbeddedCascade, EmbeddedReplica, free_port
from cascade.identity.render import password_auth
from tests.identity.link import Link

PASSWORD = "replica-test-admin-password"
ENV = {"CASCADE_PASSWORD_HASH_ROUNDS": "4"}
STOP_BOUND_S = 5.0  # generous: the replica's own bound is 2 s


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


def grant_admin(master_url: str, admin: str, user: str, password: str) -> str:
    """Create ``user`` at the master with the admin role on the admin project; its id."""
    headers = {"X-Auth-Token": admin}
    created = httpx.post(
        f"{master_url}/identity/v3/users",
        json={"user": {"name": user, "password": password, "domain_id": "default"}},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    user_id: str = created.json()["user"]["id"]
    project = httpx.get(
        f"{master_url}/identity/v3/projects", params={"name": "admin"}, headers=headers
    ).json()["projects"][0]["id"]
    role = httpx.get(
        f"{master_url}/identity/v3/roles", params={"name": "admin"}, headers=headers
    ).json()["roles"][0]["id"]
    granted = httpx.put(
        f"{master_url}/identity/v3/projects/{project}/users/{user_id}/roles/{role}",
        headers=headers,
    )
    assert granted.status_code == 204, granted.text
    return user_id


class ReplicaAs(EmbeddedReplica):
    """``cascade identity-replica`` logging in at the master as ``username``."""

    def __init__(self, data_dir: Path, master_url: str, password: str, username: str) -> None:
        super().__init__(data_dir, master_url, password)
        self.username = username

    def command(self) -> list[str]:
        return [*super().command(), "--username", self.username]


def stop_by_signal(replica: EmbeddedReplica, signum: int) -> tuple[float, int]:
    """Send ``signum``; seconds until the process is gone, and its exit code."""
    process = replica._process
    assert process is not None
    started = time.monotonic()
    process.send_signal(signum)
    try:
        code = process.wait(timeout=30)
    finally:
        replica.stop()  # SIGKILL if it did not stop
    return time.monotonic() - started, code


def test_a_wrong_master_password_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with EmbeddedCascade(tmp_path / "master", PASSWORD, env=ENV) as master:
        command = [sys.executable, "-m", "cascade", "identity-replica", "--master", master.url,
                   "--data-dir", str(tmp_path / "replica"), "--port", str(free_port())]  # fmt: skip
        env = {**os.environ, "CASCADE_MASTER_PASSWORD": "not-the-password"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"cascade: identity master {master.url} refused the login of user 'admin' (project "
        "'admin'): wrong password or unknown user; fix --password / CASCADE_MASTER_PASSWORD"
    ]
    assert "Traceback" not in done.stdout


@pytest.mark.timeout(120)
def test_a_replica_whose_credentials_the_master_refuses_for_good_gives_up(
    tmp_path: Path,
) -> None:
    with EmbeddedCascade(tmp_path / "master", PASSWORD, env=ENV) as master:
        admin = login(master.url, "admin", PASSWORD)
        follower = grant_admin(master.url, admin, "follower", "follower-pw")
        replica = ReplicaAs(tmp_path / "replica", master.url, "follower-pw", "follower")
        with replica:
            until(lambda: validates(replica.url, admin, admin), timeout=30)
            disabled = httpx.patch(
                f"{master.url}/identity/v3/users/{follower}",
                json={"user": {"enabled": False}},
                headers={"X-Auth-Token": admin},
            )
            assert disabled.status_code == 200, disabled.text
            process = replica._process
            assert process is not None
            code = process.wait(timeout=60)  # its token refused, then its login, for good
        assert code == 1
        log = replica.log_file.read_text()
        assert "Traceback" not in log
        assert log.strip().splitlines()[-1] == (
            f"cascade: identity master {master.url} refused the login of user 'follower' "
            "(project 'admin'): wrong password or unknown user; fix --password / "
            "CASCADE_MASTER_PASSWORD"
        )


@pytest.mark.timeout(180)
def test_a_replica_stops_within_two_seconds_of_a_signal_whatever_it_waits_on(
    tmp_path: Path,
) -> None:
    situations = [
        ("a long poll", signal.SIGINT),
        ("a long poll", signal.SIGTERM),
        ("a master that never answers", signal.SIGINT),
        ("a master that never answers", signal.SIGTERM),
        ("a cut link", signal.SIGINT),
    ]
    took = {}
    with (
        EmbeddedCascade(tmp_path / "master", PASSWORD, env=ENV) as master,
        Link(master.port) as link,
    ):
        admin = login(master.url, "admin", PASSWORD)
        replica = EmbeddedReplica(tmp_path / "replica", link.url, PASSWORD)
        for waiting_on, signum in situations:
            link.restore()
            replica.start()
            until(lambda: validates(replica.url, admin, admin), timeout=30)
            if waiting_on == "a master that never answers":
                link.stall()
            elif waiting_on == "a cut link":
                link.cut()
            time.sleep(1.5)  # the follower is in its long poll, its stalled call, its backoff
            seconds, code = stop_by_signal(replica, signum)
            took[(waiting_on, signum.name)] = seconds
            assert code == 0, (waiting_on, signum.name)
            assert seconds < STOP_BOUND_S, (waiting_on, signum.name, seconds)
        log = replica.log_file.read_text()
        assert "Traceback" not in log, log
        unreachable = re.compile(
            rf"identity replica: identity master {re.escape(link.url)} unreachable: .*; "
            r"retrying in [0-9.]+ s"
        )
        # uvicorn's lifecycle lines, and the one line of a master it cannot reach (the
        # cut link resets connections): nothing else, no error of the replica's own
        others = [
            line
            for line in log.splitlines()
            if line.strip() and not line.startswith("INFO:") and not unreachable.fullmatch(line)
        ]
        assert others == [], log
    print(took)
