"""The API side of the engine, no worker running: every change answers 202 with a queued
operation; the state machine refuses what the current state forbids (409, nothing queued);
Idempotency-Key returns the same operation; placement picks the least loaded site."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from cascade.db.models import Operation, Site
from cascade.engine.queue import OPERATIONS_QUEUE
from cascade.services import Services
from tests.conftest import make_tenant


def _fake_site(services: Services, project_id: str, name: str) -> None:
    """A site row that nothing contacts (no worker runs in these tests): registration through
    the API now checks the site, which these tests do not need."""
    with services.db.session() as session:
        session.add(
            Site(
                name=name,
                region_name=f"Region-{name}",
                identity_url=f"http://127.0.0.1:9/{name}/identity/v3",
                username="u",
                user_domain_name="Default",
                site_project_name="p",
                credential=services.credentials.encrypt("p"),
                project_id=project_id,
                identity_mode="own",
            )
        )


@pytest.fixture
def headers(client: TestClient, admin_token: str, services: Services) -> dict[str, str]:
    token = {"X-Auth-Token": admin_token, "X-Subject-Token": admin_token}
    project_id = client.get("/identity/v3/auth/tokens", headers=token).json()["token"]["project"]
    for name in ("site-a", "site-b"):
        _fake_site(services, project_id["id"], name)
    return {"X-Auth-Token": admin_token}


def _create(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    spec = {"name": "vm", "flavor": "m1.tiny", "image": "cirros", **body}
    return client.post("/v1/servers", headers=headers, json=spec)


def test_create_answers_202_with_a_queued_operation(
    client: TestClient, headers: dict[str, str], services: Services
) -> None:
    response = _create(client, headers, site="site-b")
    assert response.status_code == 202, response.text
    body = response.json()
    operation = body["operation"]
    assert response.headers["Location"] == f"/v1/operations/{operation['id']}"
    assert operation["status"] == "queued"
    assert operation["kind"] == "server.create"
    assert operation["resource"] == {"type": "server", "id": body["server"]["id"]}
    assert body["server"]["status"] == "BUILD"
    assert body["server"]["site"] == "site-b"
    assert body["server"]["task"] == operation["id"]
    assert services.queue.depth()[OPERATIONS_QUEUE] == 1
    shown = client.get(f"/v1/operations/{operation['id']}", headers=headers).json()
    assert shown["operation"]["id"] == operation["id"]
    listed = client.get("/v1/operations", headers=headers, params={"status": "queued"}).json()
    assert [op["id"] for op in listed["operations"]] == [operation["id"]]


def test_forbidden_transitions_answer_409_and_queue_nothing(
    client: TestClient, headers: dict[str, str], services: Services
) -> None:
    server = _create(client, headers).json()["server"]
    for action in ("reboot", "stop", "start"):
        refused = client.post(f"/v1/servers/{server['id']}/{action}", headers=headers)
        assert refused.status_code == 409, refused.text
        assert "it is BUILD" in refused.json()["error"]["message"]
    assert services.queue.depth()[OPERATIONS_QUEUE] == 1
    # Delete may queue behind the create; a second delete may not.
    assert client.delete(f"/v1/servers/{server['id']}", headers=headers).status_code == 202
    again = client.delete(f"/v1/servers/{server['id']}", headers=headers)
    assert again.status_code == 409
    assert "DELETING" in again.json()["error"]["message"]
    assert services.queue.depth()[OPERATIONS_QUEUE] == 2


def test_idempotency_key_returns_the_same_operation(
    client: TestClient, headers: dict[str, str]
) -> None:
    keyed = {**headers, "Idempotency-Key": "create-vm-1"}
    first = _create(client, keyed).json()
    second = _create(client, keyed).json()
    assert second["operation"]["id"] == first["operation"]["id"]
    assert second["server"]["id"] == first["server"]["id"]
    assert len(client.get("/v1/servers", headers=headers).json()["servers"]) == 1
    different = _create(client, keyed, name="other")
    assert different.status_code == 409
    assert "create-vm-1" in different.json()["error"]["message"]


def test_placement_picks_the_least_loaded_site(client: TestClient, headers: dict[str, str]) -> None:
    sites = [_create(client, headers, name=f"vm-{i}").json()["server"]["site"] for i in range(4)]
    assert sites == ["site-a", "site-b", "site-a", "site-b"]


def test_bad_input_is_400_and_unknown_things_404(
    client: TestClient, headers: dict[str, str]
) -> None:
    assert _create(client, headers, site="nowhere").status_code == 400
    assert _create(client, headers, flavor="").status_code == 400
    assert _create(client, headers, color="red").status_code == 400
    assert client.post("/v1/servers/nope/reboot", headers=headers).status_code == 404
    assert client.post("/v1/servers/nope/explode", headers=headers).status_code == 400
    assert client.get("/v1/operations/nope", headers=headers).status_code == 404


def test_tenants_see_only_their_own_servers_and_operations(
    client: TestClient, admin_token: str, headers: dict[str, str]
) -> None:
    accepted = _create(client, headers).json()
    tenant = make_tenant(client, admin_token)
    server_id, operation_id = accepted["server"]["id"], accepted["operation"]["id"]
    assert client.get(f"/v1/servers/{server_id}", headers=tenant.headers).status_code == 404
    assert client.get(f"/v1/operations/{operation_id}", headers=tenant.headers).status_code == 404
    assert client.get("/v1/servers", headers=tenant.headers).json()["servers"] == []
    # The tenant has no site of its own: nowhere to place a server.
    assert _create(client, tenant.headers).status_code == 400


def test_a_site_holding_servers_cannot_be_deleted(
    client: TestClient, headers: dict[str, str]
) -> None:
    _create(client, headers, site="site-a")
    refused = client.delete("/v1/sites/site-a", headers=headers)
    assert refused.status_code == 409
    assert "holds 1 servers" in refused.json()["error"]["message"]
    assert client.delete("/v1/sites/site-b", headers=headers).status_code == 204


@pytest.mark.parametrize(
    "public_key", ["00000000000000 AAAA", "ssh-rsa not-base64!", "ssh-ed25519 AAAAC3NzaC1lZDI1"]
)
def test_a_keypair_needs_a_real_openssh_public_key(
    client: TestClient, headers: dict[str, str], public_key: str
) -> None:
    response = client.post(
        "/v1/keypairs", headers=headers, json={"name": "k", "public_key": public_key}
    )
    assert response.status_code == 400, response.text
    assert "OpenSSH public key" in response.json()["error"]["message"]


def test_a_202_shows_the_operation_as_it_is_stored(
    client: TestClient, headers: dict[str, str], services: Services
) -> None:
    """The accepting routes answer from the operation they wrote, not a read-back: the body
    is what GET shows of it; a repeated Idempotency-Key after it started shows it as now."""
    keyed = {**headers, "Idempotency-Key": "probe-1"}
    answered = client.post("/v1/probes", headers=keyed)
    assert answered.status_code == 202
    operation = answered.json()["operation"]
    assert answered.headers["Location"] == f"/v1/operations/{operation['id']}"
    assert client.get(answered.headers["Location"], headers=headers).json() == answered.json()
    with services.db.session() as session:
        session.get(Operation, operation["id"]).status = "running"  # as a worker would mark it
    again = client.post("/v1/probes", headers=keyed).json()["operation"]
    assert (again["id"], again["status"]) == (operation["id"], "running")


def test_a_server_202_shows_its_operation_as_it_is_stored(
    client: TestClient, headers: dict[str, str]
) -> None:
    """A resource route answers from the operation it wrote, as the probe does: the create's
    and the delete's 202 bodies show each operation as GET shows it while it is queued."""
    created = _create(client, headers)
    deleted = client.delete(f"/v1/servers/{created.json()['server']['id']}", headers=headers)
    for answered in (created, deleted):
        assert answered.status_code == 202, answered.text
        operation = answered.json()["operation"]
        assert operation["status"] == "queued"
        assert answered.headers["Location"] == f"/v1/operations/{operation['id']}"
        assert client.get(answered.headers["Location"], headers=headers).json() == {
            "operation": operation
        }
