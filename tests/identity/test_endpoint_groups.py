"""Endpoint groups and project endpoints (Keystone's OS-EP-FILTER): CRUD, the endpoints a
group's filters choose, associations with projects, who may touch them, and replicas
following them."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cascade.services import Services
from tests.conftest import make_tenant
from tests.identity.test_replication import follower_of, replica, tables

__all__ = ["replica"]  # the fixture, used by name below

V3 = "/identity/v3"
EP = f"{V3}/OS-EP-FILTER"


def test_endpoint_groups_and_project_endpoints(
    client: TestClient, admin_token: str, services: Services, replica: Services
) -> None:
    admin = {"X-Auth-Token": admin_token}
    tenant = make_tenant(client, admin_token)
    identity = client.get(f"{V3}/services", params={"type": "identity"}, headers=admin)
    service_id = identity.json()["services"][0]["id"]
    body = {"name": "ids", "description": "d", "filters": {"service_id": service_id}}
    assert client.post(f"{EP}/endpoint_groups", json={"endpoint_group": body}).status_code == 401
    refused = client.post(
        f"{EP}/endpoint_groups", json={"endpoint_group": body}, headers=tenant.headers
    )
    assert refused.status_code == 403
    wrong = {**body, "filters": {"colour": "blue"}}
    made = client.post(f"{EP}/endpoint_groups", json={"endpoint_group": wrong}, headers=admin)
    assert made.status_code == 400
    made = client.post(f"{EP}/endpoint_groups", json={"endpoint_group": body}, headers=admin)
    assert made.status_code == 201, made.text
    group = made.json()["endpoint_group"]
    one = f"{EP}/endpoint_groups/{group['id']}"
    assert group["links"]["self"].endswith(one.removeprefix("/identity"))
    listed = client.get(f"{EP}/endpoint_groups", headers=admin).json()["endpoint_groups"]
    assert group in listed
    assert client.get(one, headers=admin).json()["endpoint_group"] == group
    assert client.head(one, headers=admin).status_code == 200
    assert client.get(f"{EP}/endpoint_groups", headers=tenant.headers).status_code == 403
    chosen = client.get(f"{one}/endpoints", headers=admin).json()["endpoints"]
    assert chosen
    assert {e["service_id"] for e in chosen} == {service_id}
    patched = client.patch(
        one, json={"endpoint_group": {"filters": {"interface": "admin"}}}, headers=admin
    )
    assert patched.json()["endpoint_group"]["filters"] == {"interface": "admin"}
    assert patched.json()["endpoint_group"]["name"] == "ids"

    # Associations with the tenant's project.
    project = tenant.project_id
    linked = f"{one}/projects/{project}"
    assert client.put(linked, headers=tenant.headers).status_code == 403
    assert client.put(linked, headers=admin).status_code == 204
    assert client.get(linked, headers=admin).json()["project"]["id"] == project
    assert client.head(linked, headers=admin).status_code == 200
    groups = client.get(f"{EP}/projects/{project}/endpoint_groups", headers=admin).json()
    assert [g["id"] for g in groups["endpoint_groups"]] == [group["id"]]
    endpoint = chosen[0]["id"]
    pinned = f"{EP}/projects/{project}/endpoints/{endpoint}"
    assert client.head(pinned, headers=admin).status_code == 404
    assert client.put(pinned, headers=admin).status_code == 204
    assert client.head(pinned, headers=admin).status_code == 204
    of_project = client.get(f"{EP}/projects/{project}/endpoints", headers=admin).json()
    assert [e["id"] for e in of_project["endpoints"]] == [endpoint]
    of_endpoint = client.get(f"{EP}/endpoints/{endpoint}/projects", headers=admin).json()
    assert [p["id"] for p in of_endpoint["projects"]] == [project]
    assert (
        client.put(f"{EP}/projects/nowhere/endpoints/{endpoint}", headers=admin).status_code == 404
    )

    follower = follower_of(client, replica)
    assert follower.sync() > 0
    for name in ("endpoint_groups", "project_endpoints", "project_endpoint_groups"):
        assert tables(replica)[name] == tables(services)[name], name
        assert tables(replica)[name]

    # Deleting the project and the group takes their associations along.
    assert client.delete(pinned, headers=admin).status_code == 204
    assert client.delete(pinned, headers=admin).status_code == 404
    assert client.delete(f"{V3}/projects/{project}", headers=admin).status_code == 204
    assert client.delete(one, headers=admin).status_code == 204
    assert client.get(one, headers=admin).status_code == 404
    follower.sync()
    for name in ("endpoint_groups", "project_endpoints", "project_endpoint_groups"):
        assert tables(replica)[name] == [], name
