"""System scope as Keystone has it: system role assignments of users, system-scoped tokens
(issued, validated here and at a replica), ``/auth/system``, and a system reader who may read
everything and change nothing."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from cascade.services import Services
from tests.conftest import Tenant, make_tenant
from tests.identity.test_replication import follower_of, replica, tables

__all__ = ["replica"]  # the fixture, used by name below

V3 = "/identity/v3"
SYSTEM_SCOPE = {"system": {"all": True}}


def role_id(client: TestClient, token: str, name: str) -> str:
    found = client.get(f"{V3}/roles", params={"name": name}, headers={"X-Auth-Token": token})
    return str(found.json()["roles"][0]["id"])


def scoped_login(client: TestClient, tenant: Tenant, scope: Any) -> Any:
    """``POST /auth/tokens`` as ``tenant``'s user (password method) with ``scope``."""
    user = {"name": f"{tenant.name}-member", "domain": {"id": "default"}}
    user["password"] = "pw-" + tenant.name
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}}
    body["auth"]["scope"] = scope
    return client.post(f"{V3}/auth/tokens", json=body)


def test_system_routes_need_a_token_and_an_admin(client: TestClient, admin_token: str) -> None:
    tenant = make_tenant(client, admin_token)
    reader = role_id(client, admin_token, "reader")
    grant = f"{V3}/system/users/{tenant.user_id}/roles/{reader}"
    for method in ("PUT", "HEAD", "GET", "DELETE"):
        assert client.request(method, grant).status_code == 401
    assert client.get(f"{V3}/auth/system").status_code == 401
    # A project member may not grant itself the system, nor read others' assignments.
    assert client.put(grant, headers=tenant.headers).status_code == 403
    listed = client.get(f"{V3}/role_assignments", headers=tenant.headers)
    assert listed.status_code == 403
    assert client.get(f"{V3}/auth/system", headers=tenant.headers).json()["system"] == []
    refused = scoped_login(client, tenant, SYSTEM_SCOPE)
    assert refused.status_code == 401, refused.text


def test_a_system_reader_gets_a_system_token_that_reads_and_does_not_write(
    client: TestClient, admin_token: str
) -> None:
    admin = {"X-Auth-Token": admin_token}
    tenant = make_tenant(client, admin_token)
    other = make_tenant(client, admin_token)
    reader = role_id(client, admin_token, "reader")
    grant = f"{V3}/system/users/{tenant.user_id}/roles/{reader}"
    assert client.head(grant, headers=admin).status_code == 404
    assert client.put(grant, headers=admin).status_code == 204
    assert client.head(grant, headers=admin).status_code == 204
    assert client.get(grant, headers=admin).status_code == 204
    roles = client.get(f"{V3}/system/users/{tenant.user_id}/roles", headers=admin).json()
    assert [r["id"] for r in roles["roles"]] == [reader]
    mine = client.get(f"{V3}/auth/system", headers=tenant.headers)
    assert mine.json()["system"] == [{"all": True}]

    issued = scoped_login(client, tenant, SYSTEM_SCOPE)
    assert issued.status_code == 201, issued.text
    body = issued.json()["token"]
    assert body["system"] == {"all": True}
    assert "project" not in body
    assert "domain" not in body
    assert {r["name"] for r in body["roles"]} == {"reader"}
    assert "catalog" in body
    system_token = issued.headers["X-Subject-Token"]
    validated = client.get(f"{V3}/auth/tokens", headers={**admin, "X-Subject-Token": system_token})
    assert validated.status_code == 200, validated.text
    assert validated.json()["token"]["system"] == {"all": True}

    reading = {"X-Auth-Token": system_token}
    listed = client.get(f"{V3}/role_assignments", headers=reading)
    assert listed.status_code == 200, listed.text
    scopes = [a["scope"] for a in listed.json()["role_assignments"]]
    assert {"project": {"id": other.project_id}} in scopes
    assert {"system": {"all": True}} in scopes
    projects = client.get(f"{V3}/projects", headers=reading)
    assert projects.status_code == 200, projects.text
    assert other.project_id in {p["id"] for p in projects.json()["projects"]}
    shown = client.get(f"{V3}/users/{other.user_id}", headers=reading)
    assert shown.status_code == 200, shown.text
    assert client.get(f"{V3}/projects", headers=tenant.headers).status_code == 403
    assert client.get(f"{V3}/users/{other.user_id}", headers=tenant.headers).status_code == 403
    written = client.post(f"{V3}/projects", json={"project": {"name": "nope"}}, headers=reading)
    assert written.status_code == 403
    assert client.put(grant, headers=reading).status_code == 403

    # Revoking the system role ends the token: it no longer holds a role on its scope.
    assert client.delete(grant, headers=admin).status_code == 204
    assert client.delete(grant, headers=admin).status_code == 404
    gone = client.get(f"{V3}/auth/tokens", headers={**admin, "X-Subject-Token": system_token})
    assert gone.status_code == 404


def test_bootstrap_admin_is_a_system_admin(client: TestClient, admin_token: str) -> None:
    admin = {"X-Auth-Token": admin_token}
    listed = client.get(
        f"{V3}/role_assignments",
        params={"scope.system": "all", "include_names": "1"},
        headers=admin,
    ).json()["role_assignments"]
    assert [(a["user"]["name"], a["role"]["name"]) for a in listed] == [("admin", "admin")]
    assert listed[0]["scope"] == {"system": {"all": True}}
    assert listed[0]["links"]["assignment"].endswith(
        f"/v3/system/users/{listed[0]['user']['id']}/roles/{listed[0]['role']['id']}"
    )
    bad = client.get(f"{V3}/role_assignments", params={"scope.system": "x"}, headers=admin)
    assert bad.status_code == 400


def test_a_replica_validates_a_system_token(
    client: TestClient, admin_token: str, services: Services, replica: Services
) -> None:
    tenant = make_tenant(client, admin_token)
    admin = {"X-Auth-Token": admin_token}
    reader = role_id(client, admin_token, "reader")
    granted = client.put(f"{V3}/system/users/{tenant.user_id}/roles/{reader}", headers=admin)
    assert granted.status_code == 204
    issued = scoped_login(client, tenant, SYSTEM_SCOPE)
    assert issued.status_code == 201, issued.text
    follower = follower_of(client, replica)
    assert follower.sync() > 0
    assert tables(replica) == tables(services)
    checked = replica.check_token(issued.headers["X-Subject-Token"])
    assert checked.system
    assert checked.project is None
    assert {role.name for role in checked.roles} == {"reader"}
