"""Tokens on every call, roles enforced the same way everywhere, tenants isolated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_tenant
from tests.site_server import threaded_site

OPEN = {
    ("POST", "/identity/v3/auth/tokens"),
    ("GET", "/v1/health"),
    ("GET", "/identity"),
    ("GET", "/identity/v3"),
}
SITE = {
    "name": "edge-1",
    "region_name": "Edge1",
    "identity_url": "http://127.0.0.1:5999/v3",
    "credentials": {"username": "svc", "password": "site-secret", "project_name": "svc"},
}


def _protected_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every (method, path) of the OpenAPI document but the open ones."""
    routes = []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        for method in operations:
            if (method.upper(), path) not in OPEN:
                routes.append((method.upper(), re.sub(r"\{[^}]+\}", "x", path)))
    return routes


def test_every_other_route_needs_a_token(client: TestClient) -> None:
    routes = _protected_routes(client)
    assert len(routes) > 40
    for method, path in routes:
        for headers in ({}, {"X-Auth-Token": "garbage"}):
            response = client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, response.status_code)
            if method != "HEAD":
                assert "requires authentication" in response.json()["error"]["message"]


def test_tenants_do_not_see_each_other(
    client: TestClient, admin_token: str, tmp_path: Path
) -> None:
    a = make_tenant(client, admin_token)
    b = make_tenant(client, admin_token)
    admin = {"X-Auth-Token": admin_token}
    with threaded_site(tmp_path / "edge-1", "edge-1", region="Edge1") as site:
        created = client.post("/v1/sites", json=site.spec(), headers=admin)
    assert created.status_code == 201, created.text
    site_id = created.json()["site"]["id"]  # the admin project's site
    for tenant in (a, b):
        assert client.get("/v1/sites", headers=tenant.headers).json()["sites"] == []
        assert client.get(f"/v1/sites/{site_id}", headers=tenant.headers).status_code == 404
        assert client.delete(f"/v1/sites/{site_id}", headers=tenant.headers).status_code == 403
    assert client.get("/identity/v3/users", headers=a.headers).status_code == 403
    assert client.get(f"/identity/v3/users/{b.user_id}", headers=a.headers).status_code == 403
    assert client.get(f"/identity/v3/projects/{b.project_id}", headers=a.headers).status_code == 403
    assert client.get(f"/identity/v3/users/{a.user_id}", headers=a.headers).status_code == 200
    admin_view = client.get("/v1/sites", headers=admin).json()["sites"]
    assert site_id in {s["id"] for s in admin_view}


@pytest.mark.parametrize("role", ["reader", "member"])
def test_reader_reads_member_writes(client: TestClient, admin_token: str, role: str) -> None:
    tenant = make_tenant(client, admin_token, role=role)
    response = client.post("/v1/sites", json=SITE, headers=tenant.headers)
    assert response.status_code == 403, response.text  # a site joins every tenant's catalog
    assert "admin required" in response.json()["error"]["message"]
    assert client.get("/v1/sites", headers=tenant.headers).status_code == 200
    refused = client.post(
        "/identity/v3/projects", json={"project": {"name": "x"}}, headers=tenant.headers
    )
    assert refused.status_code == 403
    assert "admin required" in refused.json()["error"]["message"]


def test_metrics_need_a_token_and_count_requests(client: TestClient, admin_token: str) -> None:
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers={"X-Auth-Token": admin_token})
    assert response.status_code == 200
    assert "cascade_http_request_seconds" in response.text


def test_health_needs_no_token(client: TestClient) -> None:
    body = client.get("/v1/health").json()
    assert body["status"] == "ok"
    assert body["database"] == "sqlite"
