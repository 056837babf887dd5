"""Keystone's resource rules that Tempest checks: name length limits, attributes kept as
given (``extra``), project tags, endpoints naming a region that does not exist yet (made, as
Keystone does) and regions created at a chosen id."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from tests.conftest import make_tenant

V3 = "/identity/v3"


def test_names_over_keystones_limits_are_refused(client: TestClient, admin_token: str) -> None:
    admin = {"X-Auth-Token": admin_token}
    long = "a" * 65
    for collection, body in (
        ("projects", {"project": {"name": long}}),
        ("domains", {"domain": {"name": long}}),
        ("groups", {"group": {"name": long}}),
    ):
        assert client.post(f"{V3}/{collection}", json=body, headers=admin).status_code == 400
    user = client.post(f"{V3}/users", json={"user": {"name": "u" * 255}}, headers=admin)
    assert user.status_code == 201, user.text


def test_users_and_projects_keep_attributes_they_do_not_know(
    client: TestClient, admin_token: str
) -> None:
    admin = {"X-Auth-Token": admin_token}
    name = f"u{uuid.uuid4().hex[:8]}"
    made = client.post(
        f"{V3}/users", json={"user": {"name": name, "email": f"{name}@example.org"}}, headers=admin
    )
    assert made.status_code == 201, made.text
    user = made.json()["user"]
    assert user["email"] == f"{name}@example.org"
    updated = client.patch(
        f"{V3}/users/{user['id']}", json={"user": {"project_id": "p1"}}, headers=admin
    ).json()["user"]
    assert (updated["email"], updated["project_id"]) == (f"{name}@example.org", "p1")
    shown = client.get(f"{V3}/users/{user['id']}", headers=admin).json()["user"]
    assert shown["project_id"] == "p1"
    assert "extra" not in shown
    assert "password_hash" not in shown


def test_project_tags(client: TestClient, admin_token: str) -> None:
    admin = {"X-Auth-Token": admin_token}
    tenant = make_tenant(client, admin_token)
    other = make_tenant(client, admin_token)
    tags = f"{V3}/projects/{tenant.project_id}/tags"
    assert client.get(tags).status_code == 401
    assert client.put(f"{tags}/blue", headers=tenant.headers).status_code == 403
    assert (
        client.get(f"{V3}/projects/{other.project_id}/tags", headers=tenant.headers).status_code
        == 403
    )

    assert client.put(f"{tags}/blue", headers=admin).status_code == 201
    assert client.get(f"{tags}/blue", headers=tenant.headers).status_code == 204
    assert client.get(f"{tags}/red", headers=tenant.headers).status_code == 404
    replaced = client.put(tags, json={"tags": ["a", "b", "a"]}, headers=admin)
    assert replaced.json()["tags"] == ["a", "b"]
    project = client.get(f"{V3}/projects/{tenant.project_id}", headers=admin).json()["project"]
    assert project["tags"] == ["a", "b"]
    assert client.put(f"{tags}/x,y", headers=admin).status_code == 400
    assert client.delete(f"{tags}/a", headers=admin).status_code == 204
    assert client.delete(f"{tags}/a", headers=admin).status_code == 404
    assert client.delete(tags, headers=admin).status_code == 204
    assert client.get(tags, headers=admin).json()["tags"] == []


def test_an_endpoint_naming_a_new_region_makes_it(client: TestClient, admin_token: str) -> None:
    admin = {"X-Auth-Token": admin_token}
    service = client.post(f"{V3}/services", json={"service": {"type": "x"}}, headers=admin)
    region = f"r-{uuid.uuid4().hex[:6]}"
    body = {
        "endpoint": {
            "service_id": service.json()["service"]["id"],
            "interface": "public",
            "url": "http://example.org/x",
            "region": region,
        }
    }
    made = client.post(f"{V3}/endpoints", json=body, headers=admin)
    assert made.status_code == 201, made.text
    assert made.json()["endpoint"]["region_id"] == region
    assert client.get(f"{V3}/regions/{region}", headers=admin).status_code == 200

    chosen = client.put(
        f"{V3}/regions/my-region", json={"region": {"description": "d"}}, headers=admin
    )
    assert chosen.status_code == 201, chosen.text
    assert chosen.json()["region"]["id"] == "my-region"
    again = client.put(f"{V3}/regions/my-region", json={"region": {}}, headers=admin)
    assert again.status_code == 409
