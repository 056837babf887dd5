"""Real OpenStack clients (python-openstackclient, openstacksdk, keystoneauth1) against a
``cascade up`` started by the test; then the server's log is searched for secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cascade.cli.embedded import EmbeddedCascade, EmbeddedSite
from cascade.identity.render import password_auth

ADMIN_PASSWORD = "Real-Clients-Admin-Pw-7731"
SITE_SECRET = "Site-Credential-Pw-9124"
OPENSTACK = str(Path(sys.executable).parent / "openstack")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCascade]:
    data_dir = tmp_path_factory.mktemp("real-clients")
    env = {"CASCADE_PASSWORD_HASH_ROUNDS": "4", "CASCADE_LOG_LEVEL": "debug"}
    with EmbeddedCascade(data_dir, ADMIN_PASSWORD, env=env) as cascade:
        yield cascade


def openstack(server: EmbeddedCascade, *args: str) -> Any:
    env = {
        **os.environ,
        "OS_AUTH_URL": f"{server.url}/identity/v3",
        "OS_USERNAME": "admin",
        "OS_PASSWORD": ADMIN_PASSWORD,
        "OS_PROJECT_NAME": "admin",
        "OS_USER_DOMAIN_ID": "default",
        "OS_PROJECT_DOMAIN_ID": "default",
        "OS_IDENTITY_API_VERSION": "3",
        "OS_INTERFACE": "public",
        "OS_REGION_NAME": "RegionOne",
    }
    done = subprocess.run(
        [OPENSTACK, *args, "-f", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_openstack_cli(server: EmbeddedCascade) -> None:
    token = openstack(server, "token", "issue")
    assert token["project_id"]
    assert token["user_id"]
    projects = openstack(server, "project", "list")
    assert "admin" in {p["Name"] for p in projects}
    regions = openstack(server, "region", "list")
    assert "RegionOne" in {r["Region"] for r in regions}
    catalog = openstack(server, "catalog", "list")
    assert "identity" in {entry["Type"] for entry in catalog}


def test_openstacksdk_and_keystoneauth(server: EmbeddedCascade) -> None:
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    auth = v3.Password(
        auth_url=f"{server.url}/identity/v3",
        username="admin",
        password=ADMIN_PASSWORD,
        project_name="admin",
        user_domain_id="default",
        project_domain_id="default",
    )
    ks = session.Session(auth=auth)
    assert ks.get_token()
    assert ks.get_project_id()
    from openstack.connection import Connection

    connection = Connection(session=ks, region_name="RegionOne")
    names = {project.name for project in connection.identity.projects()}
    assert "admin" in names
    users = {user.name for user in connection.identity.users()}
    assert "admin" in users


def test_secrets_never_in_responses_or_log(server: EmbeddedCascade, tmp_path: Path) -> None:
    sim = EmbeddedSite(
        "secret-check", tmp_path / "site", SITE_SECRET, env={"CASCADE_PASSWORD_HASH_ROUNDS": "4"}
    )
    with sim, httpx.Client(base_url=server.url) as client:  # registration logs in at the site
        login = client.post(
            "/identity/v3/auth/tokens", json=password_auth("admin", ADMIN_PASSWORD, "admin")
        )
        headers = {"X-Auth-Token": login.headers["X-Subject-Token"]}
        site = {
            "name": "secret-check",
            "region_name": sim.region,
            "identity_url": sim.auth_url,
            "credentials": {"username": "admin", "password": SITE_SECRET, "project_name": "admin"},
        }
        created = client.post("/v1/sites", json=site, headers=headers)
        assert created.status_code == 201, created.text
        bodies = [login.text, created.text]
        for path in (
            "/v1/sites",
            "/v1/sites/secret-check",
            "/identity/v3/users",
            "/identity/v3/auth/catalog",
            "/metrics",
        ):
            response = client.get(path, headers=headers)
            assert response.status_code == 200, path
            bodies.append(response.text)
        bad = client.post("/identity/v3/auth/tokens", json=password_auth("admin", SITE_SECRET))
        assert bad.status_code == 401
        bodies.append(bad.text)
    for body in bodies:
        assert ADMIN_PASSWORD not in body
        assert SITE_SECRET not in body
    log = server.log_file.read_text()
    assert "Uvicorn running" in log or "Application startup complete" in log
    assert ADMIN_PASSWORD not in log
    assert SITE_SECRET not in log
