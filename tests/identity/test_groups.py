"""Groups as Keystone has them: CRUD, membership, group roles on projects and the system
reaching each member's tokens, ``/role_assignments`` listing and expanding them, and the
new tables following to a replica."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from cascade.services import Services
from tests.conftest import make_tenant
from tests.identity.test_replication import follower_of, replica, tables
from tests.identity.test_system_scope import role_id

__all__ = ["replica"]  # the fixture, used by name below

V3 = "/identity/v3"


def make_group(client: TestClient, admin_token: str, **fields: Any) -> dict[str, Any]:
    body = {"group": {"name": f"g{uuid.uuid4().hex[:8]}", **fields}}
    made = client.post(f"{V3}/groups", json=body, headers={"X-Auth-Token": admin_token})
    assert made.status_code == 201, made.text
    group: dict[str, Any] = made.json()["group"]
    return group


def make_user(client: TestClient, admin_token: str) -> tuple[str, str]:
    """A user with no role anywhere: (id, name); its password is its name."""
    name = f"u{uuid.uuid4().hex[:8]}"
    made = client.post(
        f"{V3}/users",
        json={"user": {"name": name, "password": name}},
        headers={"X-Auth-Token": admin_token},
    )
    assert made.status_code == 201, made.text
    return made.json()["user"]["id"], name


def test_group_routes_need_a_token_and_an_admin(client: TestClient, admin_token: str) -> None:
    group = make_group(client, admin_token)
    tenant = make_tenant(client, admin_token)
    member = f"{V3}/groups/{group['id']}/users/{tenant.user_id}"
    for method, path in (
        ("GET", f"{V3}/groups"),
        ("POST", f"{V3}/groups"),
        ("GET", f"{V3}/groups/{group['id']}"),
        ("PUT", member),
        ("HEAD", member),
        ("GET", f"{V3}/groups/{group['id']}/users"),
        ("GET", f"{V3}/users/{tenant.user_id}/groups"),
    ):
        assert client.request(method, path).status_code == 401, (method, path)
    # A project member may neither make groups, nor join one, nor see who is in one.
    made = client.post(f"{V3}/groups", json={"group": {"name": "x"}}, headers=tenant.headers)
    assert made.status_code == 403
    assert client.put(member, headers=tenant.headers).status_code == 403
    assert client.get(f"{V3}/groups", headers=tenant.headers).status_code == 403
    assert client.get(f"{V3}/groups/{group['id']}", headers=tenant.headers).status_code == 403
    users = client.get(f"{V3}/groups/{group['id']}/users", headers=tenant.headers)
    assert users.status_code == 403
    other = make_tenant(client, admin_token)
    theirs = client.get(f"{V3}/users/{other.user_id}/groups", headers=tenant.headers)
    assert theirs.status_code == 403


def test_group_crud_and_membership(client: TestClient, admin_token: str) -> None:
    admin = {"X-Auth-Token": admin_token}
    group = make_group(client, admin_token, description="ops")
    assert group["domain_id"] == "default"
    assert group["description"] == "ops"
    assert group["links"]["self"].endswith(f"/v3/groups/{group['id']}")
    again = client.post(f"{V3}/groups", json={"group": {"name": group["name"]}}, headers=admin)
    assert again.status_code == 409
    listed = client.get(f"{V3}/groups", params={"name": group["name"]}, headers=admin).json()
    assert [g["id"] for g in listed["groups"]] == [group["id"]]
    renamed = client.patch(
        f"{V3}/groups/{group['id']}", json={"group": {"name": "renamed"}}, headers=admin
    )
    assert renamed.json()["group"]["name"] == "renamed"

    tenant = make_tenant(client, admin_token)
    member = f"{V3}/groups/{group['id']}/users/{tenant.user_id}"
    assert client.head(member, headers=admin).status_code == 404
    assert client.put(member, headers=admin).status_code == 204
    assert client.head(member, headers=admin).status_code == 204
    users = client.get(f"{V3}/groups/{group['id']}/users", headers=admin).json()["users"]
    assert [u["id"] for u in users] == [tenant.user_id]
    own = client.get(f"{V3}/users/{tenant.user_id}/groups", headers=tenant.headers)
    assert [g["id"] for g in own.json()["groups"]] == [group["id"]]
    missing = client.put(f"{V3}/groups/{group['id']}/users/nobody", headers=admin)
    assert missing.status_code == 404
    assert client.delete(member, headers=admin).status_code == 204
    assert client.delete(member, headers=admin).status_code == 404

    assert client.delete(f"{V3}/groups/{group['id']}", headers=admin).status_code == 204
    assert client.get(f"{V3}/groups/{group['id']}", headers=admin).status_code == 404


def test_a_members_token_carries_the_groups_project_role(
    client: TestClient, admin_token: str
) -> None:
    admin = {"X-Auth-Token": admin_token}
    tenant = make_tenant(client, admin_token)
    user_id, name = make_user(client, admin_token)
    group = make_group(client, admin_token)
    member_role = role_id(client, admin_token, "member")
    grant = f"{V3}/projects/{tenant.project_id}/groups/{group['id']}/roles/{member_role}"
    assert client.put(grant, headers=admin).status_code == 204
    assert client.head(grant, headers=admin).status_code == 204
    # Not a member yet: no access to the project.
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": name, "domain": {"id": "default"}, "password": name}},
            },
            "scope": {"project": {"id": tenant.project_id}},
        }
    }
    assert client.post(f"{V3}/auth/tokens", json=body).status_code == 401
    membership = f"{V3}/groups/{group['id']}/users/{user_id}"
    assert client.put(membership, headers=admin).status_code == 204
    issued = client.post(f"{V3}/auth/tokens", json=body)
    assert issued.status_code == 201, issued.text
    assert {r["name"] for r in issued.json()["token"]["roles"]} == {"member", "reader"}
    token = issued.headers["X-Subject-Token"]
    mine = client.get(f"{V3}/auth/projects", headers={"X-Auth-Token": token}).json()
    assert [p["id"] for p in mine["projects"]] == [tenant.project_id]
    # The group's role is not the user's own: the user's direct roles stay empty.
    direct = client.get(f"{V3}/projects/{tenant.project_id}/users/{user_id}/roles", headers=admin)
    assert direct.json()["roles"] == []

    # Leaving the group ends the token's access.
    assert client.delete(membership, headers=admin).status_code == 204
    check = client.get(f"{V3}/auth/tokens", headers={**admin, "X-Subject-Token": token})
    assert check.status_code == 404


def test_role_assignments_list_and_expand_groups(
    client: TestClient, admin_token: str, services: Services, replica: Services
) -> None:
    admin = {"X-Auth-Token": admin_token}
    tenant = make_tenant(client, admin_token)
    user_id, name = make_user(client, admin_token)
    group = make_group(client, admin_token)
    member_role = role_id(client, admin_token, "member")
    reader_role = role_id(client, admin_token, "reader")
    project_grant = f"{V3}/projects/{tenant.project_id}/groups/{group['id']}/roles/{member_role}"
    assert client.put(project_grant, headers=admin).status_code == 204
    system_grant = f"{V3}/system/groups/{group['id']}/roles/{reader_role}"
    assert client.put(system_grant, headers=admin).status_code == 204
    assert (
        client.put(f"{V3}/groups/{group['id']}/users/{user_id}", headers=admin).status_code == 204
    )

    listed = client.get(
        f"{V3}/role_assignments", params={"group.id": group["id"]}, headers=admin
    ).json()["role_assignments"]
    assert {(a["group"]["id"], a["role"]["id"]) for a in listed} == {
        (group["id"], member_role),
        (group["id"], reader_role),
    }
    assert all("user" not in a for a in listed)

    effective = client.get(
        f"{V3}/role_assignments",
        params={"user.id": user_id, "effective": "", "include_names": "true"},
        headers=admin,
    ).json()["role_assignments"]
    seen = {(a["role"]["name"], next(iter(a["scope"]))) for a in effective}
    # member on the project, and reader there too (implied), and reader on the system.
    assert seen == {("member", "project"), ("reader", "project"), ("reader", "system")}
    for assignment in effective:
        assert assignment["user"]["name"] == name
        assert assignment["links"]["membership"].endswith(
            f"/v3/groups/{group['id']}/users/{user_id}"
        )
    both = client.get(
        f"{V3}/role_assignments", params={"group.id": group["id"], "effective": ""}, headers=admin
    )
    assert both.status_code == 400

    # The member may scope to the system through the group.
    system_token = login_system(client, name)
    assert system_token["system"] == {"all": True}

    # The new tables follow to a replica like every identity table.
    follower = follower_of(client, replica)
    assert follower.sync() > 0
    copied = tables(replica)
    assert copied == tables(services)
    assert {g["id"] for g in copied["groups"]} >= {group["id"]}
    assert {"group_id": group["id"], "user_id": user_id} in copied["group_members"]


def login_system(client: TestClient, name: str) -> dict[str, Any]:
    user = {"name": name, "domain": {"id": "default"}, "password": name}
    body = {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"system": {"all": True}},
        }
    }
    issued = client.post(f"{V3}/auth/tokens", json=body)
    assert issued.status_code == 201, issued.text
    token: dict[str, Any] = issued.json()["token"]
    return token
