"""Keystone resources: CRUD, filters, conflicts, and Keystone's rules on deletion."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

V3 = "/identity/v3"


@pytest.fixture
def admin(client: TestClient, admin_token: str) -> dict[str, str]:
    return {"X-Auth-Token": admin_token}


@pytest.mark.parametrize(
    ("plural", "singular", "body", "patch"),
    [
        ("domains", "domain", {"name": "d1"}, {"description": "changed"}),
        ("projects", "project", {"name": "p1"}, {"description": "changed"}),
        ("users", "user", {"name": "u1", "password": "pw"}, {"description": "changed"}),
        ("roles", "role", {"name": "r1"}, {"description": "changed"}),
        ("regions", "region", {"id": "RegionX"}, {"description": "changed"}),
        ("services", "service", {"type": "compute", "name": "nova"}, {"description": "changed"}),
    ],
)
def test_crud_round_trip(
    client: TestClient,
    admin: dict[str, str],
    plural: str,
    singular: str,
    body: dict[str, str],
    patch: dict[str, str],
) -> None:
    created = client.post(f"{V3}/{plural}", json={singular: body}, headers=admin)
    assert created.status_code == 201, created.text
    row = created.json()[singular]
    assert row["links"]["self"].endswith(f"/v3/{plural}/{row['id']}")
    assert "password" not in row
    assert "password_hash" not in row
    shown = client.get(f"{V3}/{plural}/{row['id']}", headers=admin)
    assert shown.json()[singular] == row
    listed = client.get(f"{V3}/{plural}", headers=admin).json()[plural]
    assert row["id"] in {r["id"] for r in listed}
    updated = client.patch(f"{V3}/{plural}/{row['id']}", json={singular: patch}, headers=admin)
    assert updated.status_code == 200
    assert updated.json()[singular]["description"] == "changed"
    if singular == "domain":
        client.patch(
            f"{V3}/domains/{row['id']}", json={"domain": {"enabled": False}}, headers=admin
        )
    assert client.delete(f"{V3}/{plural}/{row['id']}", headers=admin).status_code == 204
    assert client.get(f"{V3}/{plural}/{row['id']}", headers=admin).status_code == 404


def test_endpoint_needs_existing_service_and_region(
    client: TestClient, admin: dict[str, str]
) -> None:
    bad = {"endpoint": {"service_id": "nope", "interface": "public", "url": "http://x"}}
    assert client.post(f"{V3}/endpoints", json=bad, headers=admin).status_code == 400
    service = client.post(
        f"{V3}/services", json={"service": {"type": "compute"}}, headers=admin
    ).json()["service"]
    good = {
        "endpoint": {
            "service_id": service["id"],
            "interface": "public",
            "url": "http://compute.example:8774/v2.1",
            "region_id": "RegionOne",
        }
    }
    created = client.post(f"{V3}/endpoints", json=good, headers=admin)
    assert created.status_code == 201, created.text
    found = client.get(f"{V3}/endpoints", params={"service_id": service["id"]}, headers=admin)
    assert [e["id"] for e in found.json()["endpoints"]] == [created.json()["endpoint"]["id"]]
    assert client.delete(f"{V3}/regions/RegionOne", headers=admin).status_code == 409


def test_duplicate_names_conflict(client: TestClient, admin: dict[str, str]) -> None:
    body = {"project": {"name": "dup"}}
    assert client.post(f"{V3}/projects", json=body, headers=admin).status_code == 201
    second = client.post(f"{V3}/projects", json=body, headers=admin)
    assert second.status_code == 409
    assert second.json()["error"]["title"] == "Conflict"


def test_enabled_domain_cannot_be_deleted(client: TestClient, admin: dict[str, str]) -> None:
    domain = client.post(f"{V3}/domains", json={"domain": {"name": "keep"}}, headers=admin).json()[
        "domain"
    ]
    refused = client.delete(f"{V3}/domains/{domain['id']}", headers=admin)
    assert refused.status_code == 403
    assert "disable" in refused.json()["error"]["message"]


def test_filters(client: TestClient, admin: dict[str, str]) -> None:
    client.post(f"{V3}/projects", json={"project": {"name": "alpha"}}, headers=admin)
    client.post(
        f"{V3}/projects", json={"project": {"name": "beta", "enabled": False}}, headers=admin
    )
    names = {
        p["name"] for p in client.get(f"{V3}/projects?name=alpha", headers=admin).json()["projects"]
    }
    assert names == {"alpha"}
    disabled = client.get(f"{V3}/projects?enabled=false", headers=admin).json()["projects"]
    assert {p["name"] for p in disabled} == {"beta"}


def test_role_assignments_listing(client: TestClient, admin: dict[str, str]) -> None:
    found = client.get(f"{V3}/role_assignments", headers=admin).json()["role_assignments"]
    assert any("project" in a["scope"] for a in found)


def _one(client: TestClient, admin: dict[str, str], kind: str, name: str) -> dict[str, Any]:
    rows = client.get(f"{V3}/{kind}?name={name}", headers=admin).json()[kind]
    assert len(rows) == 1, rows
    return dict(rows[0])


def test_role_assignments_with_names_and_effective(
    client: TestClient, admin: dict[str, str]
) -> None:
    user, project = _one(client, admin, "users", "admin"), _one(client, admin, "projects", "admin")
    role = _one(client, admin, "roles", "admin")
    query = f"user.id={user['id']}&scope.project.id={project['id']}&role.id={role['id']}"
    named = client.get(f"{V3}/role_assignments?{query}&include_names=True", headers=admin)
    assert named.status_code == 200, named.text
    [assignment] = named.json()["role_assignments"]
    assert assignment["role"] == {"id": role["id"], "name": "admin"}
    default = {"id": "default", "name": "Default"}
    assert assignment["user"] == {"id": user["id"], "name": "admin", "domain": default}
    assert assignment["scope"] == {
        "project": {"id": project["id"], "name": "admin", "domain": default}
    }
    plain = client.get(f"{V3}/role_assignments?{query}", headers=admin).json()
    assert plain["role_assignments"][0]["user"] == {"id": user["id"]}
    # admin implies member implies reader (bootstrap): effective lists the implied roles too
    mine = f"{V3}/role_assignments?user.id={user['id']}&scope.project.id={project['id']}"
    direct = client.get(mine, headers=admin).json()["role_assignments"]
    effective = client.get(f"{mine}&effective&include_names", headers=admin).json()
    names = {a["role"]["name"] for a in effective["role_assignments"]}
    assert {"admin", "member", "reader"} <= names
    assert len(effective["role_assignments"]) > len(direct)
    assert any("prior_role" in a["links"] for a in effective["role_assignments"])


def test_invalid_bodies_are_400_not_422(client: TestClient, admin: dict[str, str]) -> None:
    for body in ({}, {"project": {}}, {"project": {"name": ""}}, {"project": {"name": 5}}):
        response = client.post(f"{V3}/projects", json=body, headers=admin)
        assert response.status_code == 400, body
        assert response.json()["error"]["message"].startswith("Invalid input")
    not_json = client.post(
        f"{V3}/projects", content=b"{oops", headers={**admin, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
