"""Real OpenStack clients against a ``cascade identity-replica`` whose master is stopped.

``openstack token issue`` gets a token from the master; the master is killed (a hard stop,
as in a crash or a site cut off; a graceful stop takes the master several seconds); then the
``openstack`` CLI (token auth: Keystone's token method, answered by the replica) and
openstacksdk (``GET /v3/auth/tokens`` with ``X-Subject-Token``) validate and use that token
against the replica alone.

The replica runs with ``--region SiteA``: the master's catalog (which the replica serves)
lists it as that region's identity endpoint, so clients that name the region
(``--os-region-name``, openstacksdk ``region_name``) use it and never fall back to the
stopped master, which stays the catalog's identity endpoint of its own region.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import openstack
import pytest

from cascade.cli.embedded import EmbeddedCascade, EmbeddedReplica
from tests.identity.test_replica_process import login, until, validates

PASSWORD = "replica-clients-admin-password"
REGION = "SiteA"
OPENSTACK = str(Path(sys.executable).with_name("openstack"))


def lists_region_identity(url: str, token: str) -> bool:
    answer = httpx.get(f"{url}/identity/v3/auth/catalog", headers={"X-Auth-Token": token})
    return any(
        entry["type"] == "identity" and endpoint["region_id"] == REGION
        for entry in answer.json()["catalog"]
        for endpoint in entry["endpoints"]
    )


def isolated_env(home: Path, auth_url: str, **settings: str) -> dict[str, str]:
    """This process's environment without any OS_* setting, reading no clouds.yaml or
    secure.yaml but two empty ones of its own, plus ``settings``."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "clouds.yaml").write_text("clouds: {}\n")
    (home / "secure.yaml").write_text("clouds: {}\n")
    env = {name: value for name, value in os.environ.items() if not name.startswith("OS_")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        OS_CLIENT_CONFIG_FILE=str(home / "clouds.yaml"),
        OS_CLIENT_SECURE_FILE=str(home / "secure.yaml"),
        OS_AUTH_URL=auth_url,
        OS_IDENTITY_API_VERSION="3",
        OS_INTERFACE="public",
        **settings,
    )
    return env


def run_openstack(home: Path, env: dict[str, str], *commands: list[str]) -> list[Any]:
    """``openstack COMMAND -f json`` for each command, run side by side in ``home``; their
    JSON answers, in order."""
    children = [
        subprocess.Popen(
            [OPENSTACK, *command, "-f", "json"],
            env=env,
            cwd=home,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    answers = []
    try:
        for command, child in zip(commands, children, strict=True):
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0, f"openstack {' '.join(command)}: {err}"
            answers.append(json.loads(out))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    return answers


def same_instant(osc_time: str, keystone_time: str) -> bool:
    """``2026-11-24T20:05:34+0000`` (the CLI) against ``2026-11-24T20:05:34.000000Z``."""
    return datetime.fromisoformat(osc_time) == datetime.fromisoformat(keystone_time)


def refused(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.ConnectError:
        return True
    return False


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:openstack")
def test_openstack_clients_validate_and_use_a_master_token_on_the_replica(tmp_path: Path) -> None:
    env = {"CASCADE_PASSWORD_HASH_ROUNDS": "4"}
    home = tmp_path / "client"
    with (
        EmbeddedCascade(tmp_path / "master", PASSWORD, env=env) as master,
        EmbeddedReplica(tmp_path / "replica", master.url, PASSWORD, region=REGION) as replica,
    ):
        admin = login(master.url, "admin", PASSWORD)
        until(lambda: validates(replica.url, admin, admin), timeout=30)  # bootstrapped
        # The replica lists itself as SiteA's identity endpoint at the master just after its
        # bootstrap; wait until that change is back in its own copy of the catalog.
        until(lambda: lists_region_identity(replica.url, admin), timeout=10)

        password_env = isolated_env(
            home,
            f"{master.url}/identity/v3",
            OS_AUTH_TYPE="password",
            OS_USERNAME="admin",
            OS_PASSWORD=PASSWORD,
            OS_USER_DOMAIN_ID="default",
            OS_PROJECT_NAME="admin",
            OS_PROJECT_DOMAIN_ID="default",
        )
        [issued] = run_openstack(home, password_env, ["token", "issue"])
        token, user_id, project_id = issued["id"], issued["user_id"], issued["project_id"]

        master.kill()  # stopped hard, as in a site cut-off or a crash
        assert refused(f"{master.url}/v1/health")

        identity = f"{replica.url}/identity/v3"
        token_env = isolated_env(
            home,
            identity,
            OS_AUTH_TYPE="token",
            OS_TOKEN=token,
            OS_PROJECT_ID=project_id,
            OS_REGION_NAME=REGION,
        )
        # The CLI's token auth is Keystone's token method: the replica rescopes.
        rescoped, project, user, catalog = run_openstack(
            home,
            token_env,
            ["token", "issue"],
            ["project", "show", project_id],
            ["user", "show", user_id],
            ["catalog", "list"],
        )
        assert (rescoped["user_id"], rescoped["project_id"]) == (user_id, project_id)
        assert rescoped["id"] != token
        assert same_instant(rescoped["expires"], issued["expires"])
        assert (project["id"], project["name"]) == (project_id, "admin")
        assert (user["id"], user["name"]) == (user_id, "admin")
        assert "identity" in {service["Type"] for service in catalog}

        # openstacksdk, reading no clouds.yaml and no OS_* variable.
        conn = openstack.connect(
            auth_type="token",
            auth={"auth_url": identity, "token": token, "project_id": project_id},
            region_name=REGION,
            load_yaml_config=False,
            load_envvars=False,
        )
        try:
            answer = conn.identity.get("/auth/tokens", headers={"X-Subject-Token": token})
            assert answer.status_code == 200, answer.text
            assert answer.url.startswith(replica.url)
            body = answer.json()["token"]
            assert body["user"]["id"] == user_id
            assert body["project"]["id"] == project_id
            assert body["methods"] == ["password"]
            assert same_instant(issued["expires"], body["expires_at"])
            assert (conn.current_user_id, conn.current_project_id) == (user_id, project_id)
            assert conn.identity.get_project(project_id).name == "admin"
            assert conn.identity.get_user(user_id).name == "admin"
        finally:
            conn.close()
        assert refused(f"{master.url}/v1/health")  # all of it without the master
