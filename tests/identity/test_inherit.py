"""Inherited role assignments (Keystone's OS-INHERIT): granted on a domain or a project, held
on every project below it (never on the target itself), carried in tokens scoped there,
listed by ``/role_assignments`` as made and, with ``effective``, per project, and followed
by replicas."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from cascade.services import Services
from tests.conftest import make_tenant
from tests.identity.test_groups import make_group
from tests.identity.test_replication import follower_of, replica, tables

__all__ = ["replica"]  # the fixture, used by name below

V3 = "/identity/v3"


def made_in(client: TestClient, token: str, kind: str, **fields: Any) -> dict[str, Any]:
    body = {kind: {"name": f"{kind[0]}{uuid.uuid4().hex[:8]}", **fields}}
    made = client.post(f"{V3}/{kind}s", json=body, headers={"X-Auth-Token": token})
    assert made.status_code == 201, made.text
    found: dict[str, Any] = made.json()[kind]
    return found


def _tree(client: TestClient, token: str) -> tuple[str, str, str]:
    """A domain with a parent project and a leaf project under it: their ids."""
    domain = made_in(client, token, "domain")["id"]
    parent = made_in(client, token, "project", domain_id=domain)["id"]
    leaf = made_in(client, token, "project", domain_id=domain, parent_id=parent)["id"]
    return domain, parent, leaf


def scoped_as(client: TestClient, user: str, scope: dict[str, Any]) -> Any:
    """``POST /auth/tokens`` as ``user`` (password ``pw``) scoped to ``scope``."""
    identity = {"methods": ["password"], "password": {"user": {"id": user, "password": "pw"}}}
    return client.post(f"{V3}/auth/tokens", json={"auth": {"identity": identity, "scope": scope}})


def token_status(client: TestClient, admin_token: str, token: str) -> int:
    """What ``GET /auth/tokens`` answers about ``token``."""
    headers = {"X-Auth-Token": admin_token, "X-Subject-Token": token}
    return client.get(f"{V3}/auth/tokens", headers=headers).status_code


def role_names(answer: Any) -> set[str]:
    return {role["name"] for role in answer.json()["token"]["roles"]}


def test_inherited_routes_need_a_token_and_an_admin(client: TestClient, admin_token: str) -> None:
    tenant = make_tenant(client, admin_token)
    role = made_in(client, admin_token, "role")["id"]
    roles = f"{V3}/OS-INHERIT/domains/default/users/{tenant.user_id}/roles"
    one = f"{roles}/{role}/inherited_to_projects"
    for method, path in (
        ("PUT", one),
        ("HEAD", one),
        ("GET", one),
        ("DELETE", one),
        ("GET", f"{roles}/inherited_to_projects"),
    ):
        assert client.request(method, path).status_code == 401, (method, path)
    assert client.put(one, headers=tenant.headers).status_code == 403
    other = make_tenant(client, admin_token)
    theirs = f"{V3}/OS-INHERIT/domains/default/users/{other.user_id}/roles/inherited_to_projects"
    assert client.get(theirs, headers=tenant.headers).status_code == 403
    mine = client.get(f"{roles}/inherited_to_projects", headers=tenant.headers)
    assert mine.status_code == 200  # a user reads its own
    unknown = f"{V3}/OS-INHERIT/domains/nowhere/users/{tenant.user_id}/roles/{role}"
    admin = {"X-Auth-Token": admin_token}
    assert client.put(f"{unknown}/inherited_to_projects", headers=admin).status_code == 404
    assert client.head(one, headers=admin).status_code == 404  # not granted


def test_a_role_inherited_from_a_domain_reaches_every_project_below_it(
    client: TestClient, admin_token: str
) -> None:
    admin = {"X-Auth-Token": admin_token}
    domain, parent, leaf = _tree(client, admin_token)
    user = made_in(client, admin_token, "user", domain_id=domain, password="pw")["id"]
    role = made_in(client, admin_token, "role")
    roles = f"{V3}/OS-INHERIT/domains/{domain}/users/{user}/roles"
    one = f"{roles}/{role['id']}/inherited_to_projects"
    assert client.put(one, headers=admin).status_code == 204
    assert client.head(one, headers=admin).status_code == 204
    assert client.get(one, headers=admin).status_code == 204
    listed = client.get(f"{roles}/inherited_to_projects", headers=admin).json()["roles"]
    assert [r["id"] for r in listed] == [role["id"]]
    # Not a role on the domain itself (nor listed as one).
    direct = client.get(f"{V3}/domains/{domain}/users/{user}/roles", headers=admin).json()
    assert direct["roles"] == []
    assert scoped_as(client, user, {"domain": {"id": domain}}).status_code == 401

    issued = scoped_as(client, user, {"project": {"id": leaf}})
    assert issued.status_code == 201, issued.text
    assert role_names(issued) == {role["name"]}
    token = issued.headers["X-Subject-Token"]
    assert token_status(client, admin_token, token) == 200
    on_parent = scoped_as(client, user, {"project": {"id": parent}})
    assert role_names(on_parent) == {role["name"]}

    made = client.get(f"{V3}/role_assignments", params={"user.id": user}, headers=admin).json()
    (assignment,) = made["role_assignments"]
    assert assignment["scope"] == {"domain": {"id": domain}, "OS-INHERIT:inherited_to": "projects"}
    assert assignment["links"]["assignment"].endswith(one.removeprefix(V3))
    only = {"scope.OS-INHERIT:inherited_to": "projects", "role.id": role["id"]}
    filtered = client.get(f"{V3}/role_assignments", params=only, headers=admin).json()
    assert filtered["role_assignments"] == made["role_assignments"]
    effective = client.get(
        f"{V3}/role_assignments", params={"user.id": user, "effective": ""}, headers=admin
    ).json()["role_assignments"]
    assert sorted(a["scope"]["project"]["id"] for a in effective) == sorted([parent, leaf])
    assert all("OS-INHERIT:inherited_to" not in a["scope"] for a in effective)
    subtree = {"scope.project.id": parent, "include_subtree": "true", "effective": ""}
    below = client.get(f"{V3}/role_assignments", params=subtree, headers=admin).json()
    assert {a["scope"]["project"]["id"] for a in below["role_assignments"]} == {parent, leaf}

    # Revoked: gone from the list, and the token scoped to the leaf no longer validates.
    assert client.delete(one, headers=admin).status_code == 204
    assert client.delete(one, headers=admin).status_code == 404
    assert client.head(one, headers=admin).status_code == 404
    assert token_status(client, admin_token, token) == 404


def test_a_group_role_inherited_from_a_project_reaches_its_members_below_it(
    client: TestClient, admin_token: str, services: Services, replica: Services
) -> None:
    admin = {"X-Auth-Token": admin_token}
    domain, parent, leaf = _tree(client, admin_token)
    user = made_in(client, admin_token, "user", domain_id=domain, password="pw")["id"]
    group = make_group(client, admin_token, domain_id=domain)["id"]
    assert client.put(f"{V3}/groups/{group}/users/{user}", headers=admin).status_code == 204
    member = client.get(f"{V3}/roles", params={"name": "member"}, headers=admin).json()["roles"]
    one = f"{V3}/OS-INHERIT/projects/{parent}/groups/{group}/roles/{member[0]['id']}"
    assert client.put(f"{one}/inherited_to_projects", headers=admin).status_code == 204

    assert scoped_as(client, user, {"project": {"id": parent}}).status_code == 401
    issued = scoped_as(client, user, {"project": {"id": leaf}})
    assert issued.status_code == 201, issued.text
    assert role_names(issued) == {"member", "reader"}  # and what member implies
    effective = client.get(
        f"{V3}/role_assignments",
        params={"scope.project.id": leaf, "effective": "true", "include_names": "1"},
        headers=admin,
    ).json()["role_assignments"]
    assert {(a["user"]["id"], a["role"]["name"]) for a in effective} == {
        (user, "member"),
        (user, "reader"),
    }
    assert all(
        a["links"]["membership"].endswith(f"/groups/{group}/users/{user}") for a in effective
    )
    projects = client.get(f"{V3}/users/{user}/projects", headers=admin)
    assert [p["id"] for p in projects.json()["projects"]] == [leaf]

    # A replica gets the assignment and validates the leaf's token with it.
    follower = follower_of(client, replica)
    assert follower.sync() > 0
    assert (
        tables(replica)["inherited_role_assignments"]
        == tables(services)["inherited_role_assignments"]
    )
    context = replica.check_token(issued.headers["X-Subject-Token"])
    assert {role.name for role in context.roles} == {"member", "reader"}
    # Deleting the group takes its inherited assignment along, at the replica too.
    assert client.delete(f"{V3}/groups/{group}", headers=admin).status_code == 204
    follower.sync()
    assert tables(replica)["inherited_role_assignments"] == []
