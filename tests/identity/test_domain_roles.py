"""Domain-specific roles (Keystone's): a role of one domain, listed only when that domain is
asked for, assigned only inside it, never in a token or the effective assignments itself,
only through the global roles it implies; a global role never implies one."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.identity.test_inherit import made_in, role_names, scoped_as, token_status

V3 = "/identity/v3"


def test_domain_roles_count_only_through_the_global_roles_they_imply(
    client: TestClient, admin_token: str
) -> None:
    admin = {"X-Auth-Token": admin_token}
    domain = made_in(client, admin_token, "domain")["id"]
    other = made_in(client, admin_token, "domain")["id"]
    project = made_in(client, admin_token, "project", domain_id=domain)["id"]
    user = made_in(client, admin_token, "user", domain_id=domain, password="pw")["id"]
    mine = made_in(client, admin_token, "role", domain_id=domain)
    assert mine["domain_id"] == domain
    unknown = client.post(
        f"{V3}/roles", json={"role": {"name": "x", "domain_id": "nowhere"}}, headers=admin
    )
    assert unknown.status_code == 404
    listed = client.get(f"{V3}/roles", params={"domain_id": domain}, headers=admin).json()
    assert listed["roles"] == [mine]
    everyone = client.get(f"{V3}/roles", headers=admin).json()["roles"]
    assert mine["id"] not in {r["id"] for r in everyone}  # the global ones only
    assert {"admin", "member", "reader"} <= {r["name"] for r in everyone}

    # Assigned in its domain; refused anywhere else.
    grant = f"{V3}/projects/{project}/users/{user}/roles/{mine['id']}"
    assert client.put(grant, headers=admin).status_code == 204
    elsewhere = f"{V3}/domains/{other}/users/{user}/roles/{mine['id']}"
    assert client.put(elsewhere, headers=admin).status_code == 403
    # Alone it gives no role: no token, no effective assignment.
    assert scoped_as(client, user, {"project": {"id": project}}).status_code == 401
    effective = {"scope.project.id": project, "user.id": user, "effective": "1"}
    found = client.get(f"{V3}/role_assignments", params=effective, headers=admin).json()
    assert found["role_assignments"] == []
    made = client.get(f"{V3}/role_assignments", params={"user.id": user}, headers=admin).json()
    assert [a["role"]["id"] for a in made["role_assignments"]] == [mine["id"]]

    # Implying a global role, that role reaches the token and the effective list.
    reader = client.get(f"{V3}/roles", params={"name": "reader"}, headers=admin).json()["roles"][0]
    assert (
        client.put(f"{V3}/roles/{mine['id']}/implies/{reader['id']}", headers=admin).status_code
        == 201
    )
    issued = scoped_as(client, user, {"project": {"id": project}})
    assert issued.status_code == 201, issued.text
    assert role_names(issued) == {"reader"}
    found = client.get(f"{V3}/role_assignments", params=effective, headers=admin).json()
    assert [a["role"]["id"] for a in found["role_assignments"]] == [reader["id"]]
    # A global role never implies a domain's; a domain's may imply another domain's.
    backwards = f"{V3}/roles/{reader['id']}/implies/{mine['id']}"
    assert client.put(backwards, headers=admin).status_code == 403
    theirs = made_in(client, admin_token, "role", domain_id=other)
    assert (
        client.put(f"{V3}/roles/{mine['id']}/implies/{theirs['id']}", headers=admin).status_code
        == 201
    )

    # Deleting the (disabled) domain takes its roles, and what they gave, along.
    token = issued.headers["X-Subject-Token"]
    assert (
        client.patch(
            f"{V3}/domains/{domain}", json={"domain": {"enabled": False}}, headers=admin
        ).status_code
        == 200
    )
    assert client.delete(f"{V3}/domains/{domain}", headers=admin).status_code == 204
    assert client.get(f"{V3}/roles/{mine['id']}", headers=admin).status_code == 404
    assert token_status(client, admin_token, token) == 404
