"""Implied roles as Keystone has them: rules made, shown, listed and removed over the API,
followed transitively in tokens and in effective role assignments; bootstrap's admin ->
member -> reader are rules like any other."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from tests.conftest import make_tenant
from tests.identity.test_system_scope import role_id

V3 = "/identity/v3"


def make_role(client: TestClient, admin_token: str) -> str:
    made = client.post(
        f"{V3}/roles",
        json={"role": {"name": f"r{uuid.uuid4().hex[:8]}"}},
        headers={"X-Auth-Token": admin_token},
    )
    assert made.status_code == 201, made.text
    return str(made.json()["role"]["id"])


def test_implied_role_rules_need_an_admin(client: TestClient, admin_token: str) -> None:
    tenant = make_tenant(client, admin_token)
    prior, implied = make_role(client, admin_token), make_role(client, admin_token)
    rule = f"{V3}/roles/{prior}/implies/{implied}"
    assert client.put(rule).status_code == 401
    assert client.get(f"{V3}/role_inferences").status_code == 401
    assert client.put(rule, headers=tenant.headers).status_code == 403
    assert client.get(f"{V3}/role_inferences", headers=tenant.headers).status_code == 403


def test_rules_are_followed_transitively_in_tokens_and_assignments(
    client: TestClient, admin_token: str
) -> None:
    admin = {"X-Auth-Token": admin_token}
    tenant = make_tenant(client, admin_token)
    first, second = make_role(client, admin_token), make_role(client, admin_token)
    member = role_id(client, admin_token, "member")
    # Bootstrap's rules are listed like any other.
    every = client.get(f"{V3}/role_inferences", headers=admin).json()["role_inferences"]
    member_rule = next(r for r in every if r["prior_role"]["name"] == "member")
    assert [r["name"] for r in member_rule["implies"]] == ["reader"]

    made = client.put(f"{V3}/roles/{member}/implies/{first}", headers=admin)
    assert made.status_code == 201, made.text
    assert made.json()["role_inference"]["implies"]["id"] == first
    assert client.put(f"{V3}/roles/{first}/implies/{second}", headers=admin).status_code == 201
    assert client.head(f"{V3}/roles/{member}/implies/{first}", headers=admin).status_code == 204
    shown = client.get(f"{V3}/roles/{member}/implies", headers=admin).json()["role_inference"]
    assert {r["id"] for r in shown["implies"]} >= {first}

    # The tenant's member token now carries both new roles (member -> first -> second).
    check = client.get(
        f"{V3}/auth/tokens", headers={**admin, "X-Subject-Token": tenant.token}
    ).json()["token"]
    assert {first, second} <= {r["id"] for r in check["roles"]}
    effective = client.get(
        f"{V3}/role_assignments",
        params={"user.id": tenant.user_id, "effective": "true"},
        headers=admin,
    ).json()["role_assignments"]
    implied = {a["role"]["id"]: a["links"].get("prior_role", "") for a in effective}
    assert implied[second].endswith(f"/v3/roles/{member}")

    # admin may never be implied; a rule that does not exist cannot be removed.
    admin_role = role_id(client, admin_token, "admin")
    refused = client.put(f"{V3}/roles/{first}/implies/{admin_role}", headers=admin)
    assert refused.status_code == 403
    gone = f"{V3}/roles/{first}/implies/{second}"
    assert client.delete(gone, headers=admin).status_code == 204
    assert client.delete(gone, headers=admin).status_code == 404
    assert client.get(gone, headers=admin).status_code == 404
    # Deleting a role drops the rules it takes part in.
    assert client.delete(f"{V3}/roles/{first}", headers=admin).status_code == 204
    left = client.get(f"{V3}/roles/{member}/implies", headers=admin).json()["role_inference"]
    assert first not in {r["id"] for r in left["implies"]}
