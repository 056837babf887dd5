"""Keystone's resource rules that Tempest checks: name length limits, attributes kept as
given (``extra``), project tags, endpoints naming a region that does not exist yet (made, as
Keystone does) and regions created at a chosen id."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from tests.conftest import login, make_tenant

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


def test_a_user_changes_its_password_given_the_original(
    client: TestClient, admin_token: str
) -> None:
    admin = {"X-Auth-Token": admin_token}
    tenant = make_tenant(client, admin_token)
    change = f"{V3}/users/{tenant.user_id}/password"
    body = {"user": {"password": "new-secret", "original_password": "pw-" + tenant.name}}
    assert client.post(change, json=body).status_code == 401  # no token
    wrong = {"user": {"password": "new-secret", "original_password": "wrong"}}
    assert client.post(change, json=wrong, headers=tenant.headers).status_code == 401
    assert client.post(change, json=body, headers=tenant.headers).status_code == 204
    # The tokens issued before the change no longer validate.
    old = client.get(f"{V3}/auth/tokens", headers={**admin, "X-Subject-Token": tenant.token})
    assert old.status_code == 404
    login(client, f"{tenant.name}-member", "new-secret", tenant.name)


def test_policies_and_oauth_consumers(client: TestClient, admin_token: str) -> None:
    admin = {"X-Auth-Token": admin_token}
    tenant = make_tenant(client, admin_token)
    made = client.post(
        f"{V3}/policies", json={"policy": {"type": "application/json", "blob": "{}"}}, headers=admin
    )
    assert made.status_code == 201, made.text
    policy = made.json()["policy"]
    assert (
        client.post(f"{V3}/policies", json={"policy": {"blob": "{}"}}, headers=admin).status_code
        == 400
    )
    patched = client.patch(
        f"{V3}/policies/{policy['id']}", json={"policy": {"blob": '{"a": 1}'}}, headers=admin
    )
    assert patched.json()["policy"]["blob"] == '{"a": 1}'
    refused = client.post(
        f"{V3}/policies", json={"policy": {"type": "t", "blob": "b"}}, headers=tenant.headers
    )
    assert refused.status_code == 403

    consumers = f"{V3}/OS-OAUTH1/consumers"
    assert client.get(consumers, headers=tenant.headers).status_code == 403
    created = client.post(consumers, json={"consumer": {"description": "d"}}, headers=admin)
    assert created.status_code == 201, created.text
    consumer = created.json()["consumer"]
    assert len(consumer["secret"]) >= 32
    shown = client.get(f"{consumers}/{consumer['id']}", headers=admin).json()["consumer"]
    assert "secret" not in shown or shown["secret"] is None
    listed = client.get(consumers, headers=admin).json()["consumers"]
    assert [c["id"] for c in listed] == [consumer["id"]]
    assert client.delete(f"{consumers}/{consumer['id']}", headers=admin).status_code == 204


def test_an_unknown_domain_is_not_found(client: TestClient, admin_token: str) -> None:
    admin = {"X-Auth-Token": admin_token}
    body = {"user": {"name": "x", "domain_id": "nowhere"}}
    assert client.post(f"{V3}/users", json=body, headers=admin).status_code == 404


def test_deleting_a_disabled_domain_deletes_what_it_holds(
    client: TestClient, admin_token: str
) -> None:
    admin = {"X-Auth-Token": admin_token}
    domain = client.post(f"{V3}/domains", json={"domain": {"name": "d1"}}, headers=admin).json()
    domain_id = domain["domain"]["id"]
    project = client.post(
        f"{V3}/projects", json={"project": {"name": "p", "domain_id": domain_id}}, headers=admin
    ).json()["project"]
    user = client.post(
        f"{V3}/users", json={"user": {"name": "u", "domain_id": domain_id}}, headers=admin
    ).json()["user"]
    group = client.post(
        f"{V3}/groups", json={"group": {"name": "g", "domain_id": domain_id}}, headers=admin
    ).json()["group"]
    reader = client.get(f"{V3}/roles", params={"name": "reader"}, headers=admin).json()
    role = reader["roles"][0]["id"]
    for path in (
        f"{V3}/groups/{group['id']}/users/{user['id']}",
        f"{V3}/projects/{project['id']}/users/{user['id']}/roles/{role}",
        f"{V3}/projects/{project['id']}/groups/{group['id']}/roles/{role}",
        f"{V3}/domains/{domain_id}/users/{user['id']}/roles/{role}",
    ):
        assert client.put(path, headers=admin).status_code == 204, path
    assert client.delete(f"{V3}/domains/{domain_id}", headers=admin).status_code == 403
    disabled = client.patch(
        f"{V3}/domains/{domain_id}", json={"domain": {"enabled": False}}, headers=admin
    )
    assert disabled.status_code == 200
    assert client.delete(f"{V3}/domains/{domain_id}", headers=admin).status_code == 204
    for path in (
        f"{V3}/domains/{domain_id}",
        f"{V3}/projects/{project['id']}",
        f"{V3}/users/{user['id']}",
        f"{V3}/groups/{group['id']}",
    ):
        assert client.get(path, headers=admin).status_code == 404, path
    left = client.get(f"{V3}/role_assignments", headers=admin).json()["role_assignments"]
    assert all(a.get("user", {}).get("id") != user["id"] for a in left)


def test_projects_under_a_parent(client: TestClient, admin_token: str) -> None:
    admin = {"X-Auth-Token": admin_token}
    domain = client.post(f"{V3}/domains", json={"domain": {"name": "d2"}}, headers=admin)
    domain_id = domain.json()["domain"]["id"]
    root = client.post(
        f"{V3}/projects", json={"project": {"name": "root", "domain_id": domain_id}}, headers=admin
    ).json()["project"]
    assert root["parent_id"] == domain_id
    child = client.post(
        f"{V3}/projects",
        json={"project": {"name": "child", "parent_id": root["id"]}},
        headers=admin,
    )
    assert child.status_code == 201, child.text
    assert child.json()["project"]["domain_id"] == domain_id  # the parent's domain
    assert child.json()["project"]["parent_id"] == root["id"]
    listed = client.get(f"{V3}/projects", params={"parent_id": root["id"]}, headers=admin)
    assert [p["name"] for p in listed.json()["projects"]] == ["child"]
    elsewhere = {"project": {"name": "x", "parent_id": root["id"], "domain_id": "default"}}
    assert client.post(f"{V3}/projects", json=elsewhere, headers=admin).status_code == 400
    orphan = {"project": {"name": "x", "parent_id": "nowhere"}}
    assert client.post(f"{V3}/projects", json=orphan, headers=admin).status_code == 404
    assert client.delete(f"{V3}/projects/{root['id']}", headers=admin).status_code == 403
