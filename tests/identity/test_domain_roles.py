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


def test_a_project_acting_as_a_domain_is_one(client: TestClient, admin_token: str) -> None:
    admin = {"X-Auth-Token": admin_token}
    body = {"project": {"name": "acting", "description": "d", "is_domain": True}}
    made = client.post(f"{V3}/projects", json=body, headers=admin)
    assert made.status_code == 201, made.text
    project = made.json()["project"]
    assert project["is_domain"] is True
    assert "is_domain" not in project.get("extra", {})
    domain = client.get(f"{V3}/domains/{project['id']}", headers=admin)
    assert domain.json()["domain"]["name"] == "acting"
    acting = client.get(f"{V3}/projects", params={"is_domain": "true"}, headers=admin).json()
    assert [p["id"] for p in acting["projects"]] == [project["id"]]
    plain = client.get(f"{V3}/projects", headers=admin).json()["projects"]
    assert project["id"] not in {p["id"] for p in plain}
    # Keystone's refusals: a domain has no parent, no domain, and a project stays what it is.
    with_parent = {"project": {"name": "x", "is_domain": True, "parent_id": project["id"]}}
    assert client.post(f"{V3}/projects", json=with_parent, headers=admin).status_code == 400
    flip = {"project": {"is_domain": False}}
    assert (
        client.patch(f"{V3}/projects/{project['id']}", json=flip, headers=admin).status_code == 400
    )
    taken = client.post(f"{V3}/projects", json=body, headers=admin)
    assert taken.status_code == 409  # its name is a domain's

    # Projects go inside it; disabled through the project API, it is deleted with them.
    inside = made_in(client, admin_token, "project", domain_id=project["id"])
    assert inside["parent_id"] == project["id"]
    assert client.delete(f"{V3}/projects/{project['id']}", headers=admin).status_code == 403
    off = {"project": {"enabled": False}}
    assert (
        client.patch(f"{V3}/projects/{project['id']}", json=off, headers=admin).status_code == 200
    )
    assert (
        client.get(f"{V3}/domains/{project['id']}", headers=admin).json()["domain"]["enabled"]
        is False
    )
    assert client.delete(f"{V3}/projects/{project['id']}", headers=admin).status_code == 204
    for path in (
        f"domains/{project['id']}",
        f"projects/{project['id']}",
        f"projects/{inside['id']}",
    ):
        assert client.get(f"{V3}/{path}", headers=admin).status_code == 404, path
