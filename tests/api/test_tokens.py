"""Keystone token API: issue, validate, check, revoke, rescope, and what invalidates a token."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cascade.identity.render import password_auth
from tests.conftest import ADMIN_PASSWORD, login, make_tenant

TOKENS = "/identity/v3/auth/tokens"


def _validate(client: TestClient, caller: str, subject: str) -> int:
    headers = {"X-Auth-Token": caller, "X-Subject-Token": subject}
    return client.get(TOKENS, headers=headers).status_code


def test_project_scoped_token_body(client: TestClient) -> None:
    response = client.post(TOKENS, json=password_auth("admin", ADMIN_PASSWORD, "admin"))
    assert response.status_code == 201
    token = response.json()["token"]
    assert response.headers["X-Subject-Token"]
    assert token["methods"] == ["password"]
    assert token["user"]["name"] == "admin"
    assert token["user"]["domain"] == {"id": "default", "name": "Default"}
    assert token["project"]["name"] == "admin"
    assert {r["name"] for r in token["roles"]} == {"admin", "member", "reader"}
    assert len(token["audit_ids"]) == 1
    assert len(token["audit_ids"][0]) == 22
    assert token["expires_at"].endswith(".000000Z")
    identity = next(entry for entry in token["catalog"] if entry["type"] == "identity")
    assert {e["interface"] for e in identity["endpoints"]} == {"public", "internal", "admin"}


def test_unscoped_and_nocatalog(client: TestClient) -> None:
    body = password_auth("admin", ADMIN_PASSWORD)
    body["auth"]["scope"] = "unscoped"
    token = client.post(TOKENS, json=body).json()["token"]
    assert "project" not in token
    assert "catalog" not in token
    scoped = client.post(
        f"{TOKENS}?nocatalog", json=password_auth("admin", ADMIN_PASSWORD, "admin")
    )
    assert "catalog" not in scoped.json()["token"]
    assert "roles" in scoped.json()["token"]


def test_default_project_scope_when_no_scope_given(client: TestClient) -> None:
    token = client.post(TOKENS, json=password_auth("admin", ADMIN_PASSWORD)).json()["token"]
    assert token["project"]["name"] == "admin"


def test_domain_scoped_token(client: TestClient, admin_token: str) -> None:
    headers = {"X-Auth-Token": admin_token}
    users = client.get("/identity/v3/users", params={"name": "admin"}, headers=headers)
    admin_id = users.json()["users"][0]["id"]
    role_id = client.get("/identity/v3/roles?name=admin", headers=headers).json()["roles"][0]["id"]
    granted = client.put(
        f"/identity/v3/domains/default/users/{admin_id}/roles/{role_id}", headers=headers
    )
    assert granted.status_code == 204
    body = password_auth("admin", ADMIN_PASSWORD)
    body["auth"]["scope"] = {"domain": {"id": "default"}}
    response = client.post(TOKENS, json=body)
    assert response.status_code == 201, response.text
    assert response.json()["token"]["domain"] == {"id": "default", "name": "Default"}
    assert _validate(client, admin_token, response.headers["X-Subject-Token"]) == 200


def test_wrong_password_and_unknown_user_are_401(client: TestClient) -> None:
    for body in (password_auth("admin", "wrong", "admin"), password_auth("nobody", "x", "admin")):
        response = client.post(TOKENS, json=body)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == 401
        assert response.json()["error"]["title"] == "Unauthorized"


def test_malformed_auth_body_is_400(client: TestClient) -> None:
    for body in (
        {},
        {"auth": {}},
        {"auth": {"identity": {"methods": ["kerberos"]}}},
        {"auth": {"identity": {"methods": ["password"]}}},
    ):
        response = client.post(TOKENS, json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["message"]


def test_validate_check_and_revoke(client: TestClient, admin_token: str) -> None:
    subject = login(client, "admin", ADMIN_PASSWORD, "admin")
    headers = {"X-Auth-Token": admin_token, "X-Subject-Token": subject}
    validated = client.get(TOKENS, headers=headers)
    assert validated.status_code == 200
    assert validated.headers["X-Subject-Token"] == subject
    assert client.head(TOKENS, headers=headers).status_code == 200
    assert client.delete(TOKENS, headers=headers).status_code == 204
    assert client.get(TOKENS, headers=headers).status_code == 404
    assert client.head(TOKENS, headers=headers).status_code == 404
    assert client.get("/v1/sites", headers={"X-Auth-Token": subject}).status_code == 401
    # The caller's own token is untouched.
    assert client.get("/v1/sites", headers={"X-Auth-Token": admin_token}).status_code == 200


def test_token_method_rescopes_and_keeps_expiry(client: TestClient, admin_token: str) -> None:
    tenant = make_tenant(client, admin_token)
    unscoped_body = password_auth(f"{tenant.name}-member", "pw-" + tenant.name)
    unscoped_body["auth"]["scope"] = "unscoped"
    unscoped = client.post(TOKENS, json=unscoped_body)
    parent = unscoped.json()["token"]
    rescope = {
        "auth": {
            "identity": {
                "methods": ["token"],
                "token": {"id": unscoped.headers["X-Subject-Token"]},
            },
            "scope": {"project": {"id": tenant.project_id}},
        }
    }
    response = client.post(TOKENS, json=rescope)
    assert response.status_code == 201, response.text
    child = response.json()["token"]
    assert child["project"]["id"] == tenant.project_id
    assert set(child["methods"]) == {"password", "token"}
    assert child["expires_at"] == parent["expires_at"]
    assert child["audit_ids"][1] == parent["audit_ids"][0]


def test_user_cannot_validate_someone_elses_token(client: TestClient, admin_token: str) -> None:
    tenant = make_tenant(client, admin_token)
    assert _validate(client, tenant.token, admin_token) == 403
    assert _validate(client, tenant.token, tenant.token) == 200


def test_disabling_user_or_project_invalidates_tokens(client: TestClient, admin_token: str) -> None:
    headers = {"X-Auth-Token": admin_token}
    tenant = make_tenant(client, admin_token)
    assert _validate(client, admin_token, tenant.token) == 200
    client.patch(
        f"/identity/v3/projects/{tenant.project_id}",
        headers=headers,
        json={"project": {"enabled": False}},
    )
    assert _validate(client, admin_token, tenant.token) == 404
    client.patch(
        f"/identity/v3/projects/{tenant.project_id}",
        headers=headers,
        json={"project": {"enabled": True}},
    )
    assert _validate(client, admin_token, tenant.token) == 200
    client.patch(
        f"/identity/v3/users/{tenant.user_id}", headers=headers, json={"user": {"enabled": False}}
    )
    assert _validate(client, admin_token, tenant.token) == 404


def test_password_change_and_role_removal_invalidate(client: TestClient, admin_token: str) -> None:
    headers = {"X-Auth-Token": admin_token}
    tenant = make_tenant(client, admin_token)
    client.patch(
        f"/identity/v3/users/{tenant.user_id}",
        headers=headers,
        json={"user": {"password": "new-password"}},
    )
    assert _validate(client, admin_token, tenant.token) == 404
    fresh = login(client, f"{tenant.name}-member", "new-password", tenant.name)
    assert _validate(client, admin_token, fresh) == 200
    member = client.get("/identity/v3/roles?name=member", headers=headers).json()["roles"][0]
    path = f"/identity/v3/projects/{tenant.project_id}/users/{tenant.user_id}/roles/{member['id']}"
    assert client.delete(path, headers=headers).status_code == 204
    assert _validate(client, admin_token, fresh) == 404


def test_auth_projects_and_catalog(client: TestClient, admin_token: str) -> None:
    tenant = make_tenant(client, admin_token)
    projects = client.get("/identity/v3/auth/projects", headers=tenant.headers).json()["projects"]
    assert [p["id"] for p in projects] == [tenant.project_id]
    catalog = client.get("/identity/v3/auth/catalog", headers=tenant.headers)
    assert catalog.status_code == 200
    assert any(entry["type"] == "identity" for entry in catalog.json()["catalog"])


def test_version_discovery_needs_no_token(client: TestClient) -> None:
    listing = client.get("/identity")
    assert listing.status_code == 300
    assert listing.json()["versions"]["values"][0]["id"].startswith("v3")
    version = client.get("/identity/v3")
    assert version.status_code == 200
    assert version.json()["version"]["status"] == "stable"
