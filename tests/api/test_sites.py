"""/v1/sites against real emulated regions: registration contacts the site and stores nothing
it refuses, only an admin changes the shared catalog, a stuck site is fixed with PATCH, a dead
one forced out with its servers marked; the credential is write-only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cascade.cli.embedded import EmbeddedSite, free_port
from cascade.db.models import Region, Site
from cascade.errors import present
from cascade.services import Services
from cascade.sites.driver import SiteCallFailed, SiteDriver
from cascade.sites.registry import SiteRegistry, SiteRemoved
from tests.conftest import make_tenant
from tests.sim.conftest import SITE_ADMIN_PASSWORD
from tests.site_server import ThreadedSite, threaded_site


@pytest.fixture
def site(tmp_path: Path) -> Iterator[ThreadedSite]:
    with threaded_site(tmp_path / "edge-1", "edge-1", region="Edge1") as running:
        yield running


@pytest.fixture
def headers(admin_token: str) -> dict[str, str]:
    return {"X-Auth-Token": admin_token}


def catalog_regions(client: TestClient, headers: dict[str, str]) -> set[str]:
    regions = client.get("/identity/v3/regions", headers=headers).json()["regions"]
    return {region["id"] for region in regions}


def assert_nothing_stored(client: TestClient, headers: dict[str, str], svc: Services) -> None:
    assert client.get("/v1/sites", headers=headers).json()["sites"] == []
    assert catalog_regions(client, headers) == {svc.settings.region}
    with svc.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Site)) == 0


def registry(svc: Services) -> SiteRegistry:
    return SiteRegistry(svc.db, svc.credentials, svc.settings.effective_public_url)


def list_servers_as_cascade(svc: Services, site: str) -> Any:
    """What a worker does: reach the site with the credential Cascade stored."""
    driver = SiteDriver(registry(svc).access(site), deadline=2.0)
    return driver.call("list servers", lambda c: list(c.compute.servers()))


def test_register_list_show_delete(
    client: TestClient, headers: dict[str, str], services: Services, site: ThreadedSite
) -> None:
    created = client.post("/v1/sites", json=site.spec(), headers=headers)
    assert created.status_code == 201, created.text
    body = created.json()["site"]
    assert body["name"] == "edge-1"
    assert SITE_ADMIN_PASSWORD not in created.text
    assert "password" not in body
    assert client.get("/v1/sites/edge-1", headers=headers).json()["site"] == body
    assert client.get(f"/v1/sites/{body['id']}", headers=headers).json()["site"] == body
    assert SITE_ADMIN_PASSWORD not in client.get("/v1/sites", headers=headers).text
    assert "Edge1" in catalog_regions(client, headers)
    catalog = client.get("/identity/v3/auth/catalog", headers=headers).json()["catalog"]
    urls = {e["url"] for entry in catalog for e in entry["endpoints"] if e["region_id"] == "Edge1"}
    assert urls == {site.auth_url}
    with services.db.session() as session:
        stored = session.get(Site, body["id"])
        assert stored is not None
        assert SITE_ADMIN_PASSWORD.encode() not in stored.credential
    assert list_servers_as_cascade(services, "edge-1") == []
    assert client.delete("/v1/sites/edge-1", headers=headers).status_code == 204
    assert client.get("/v1/sites/edge-1", headers=headers).status_code == 404
    assert "Edge1" not in catalog_regions(client, headers)


def test_duplicates_and_bad_input(
    client: TestClient, headers: dict[str, str], site: ThreadedSite
) -> None:
    assert client.post("/v1/sites", json=site.spec(), headers=headers).status_code == 201
    again = client.post("/v1/sites", json=site.spec(), headers=headers)
    assert again.status_code == 409
    assert "edge-1" in again.json()["error"]["message"]
    spec = site.spec()
    for bad in (
        {**spec, "name": "Bad Name"},
        {**spec, "identity_url": "ftp://x"},
        {k: v for k, v in spec.items() if k != "credentials"},
        {**spec, "extra": 1},
    ):
        response = client.post("/v1/sites", json=bad, headers=headers)
        assert response.status_code == 400, bad
        assert response.json()["error"]["message"]
    for bad_patch in ({}, {"identity_url": "ftp://x"}, {"color": "red"}):
        response = client.patch("/v1/sites/edge-1", json=bad_patch, headers=headers)
        assert response.status_code == 400, bad_patch


def _wrong_password(site: ThreadedSite) -> dict[str, Any]:
    return site.spec(password="wrong")


def _closed_port(site: ThreadedSite) -> dict[str, Any]:
    return {**site.spec(), "identity_url": f"http://127.0.0.1:{free_port()}/identity/v3"}


def _other_region(site: ThreadedSite) -> dict[str, Any]:
    return {**site.spec(), "region_name": "Elsewhere"}


@pytest.mark.parametrize(
    ("spec", "status", "fragments"),
    [
        (_wrong_password, 400, ["site edge-1: ", "refused user 'admin'", "HTTP 401"]),
        (_closed_port, 502, ["site edge-1: log in and read the catalog failed", "Connect"]),
        (
            _other_region,
            400,
            ["no compute, volume, network, image endpoint in region 'Elsewhere'", "Edge1"],
        ),
    ],
    ids=["wrong-password", "closed-port", "region-not-in-catalog"],
)
def test_a_site_that_refuses_is_not_stored(
    client: TestClient,
    headers: dict[str, str],
    services: Services,
    site: ThreadedSite,
    spec: Callable[[ThreadedSite], dict[str, Any]],
    status: int,
    fragments: list[str],
) -> None:
    refused = client.post("/v1/sites", json=spec(site), headers=headers)
    assert refused.status_code == status, refused.text
    message = refused.json()["error"]["message"]
    for fragment in fragments:
        assert fragment in message
    assert_nothing_stored(client, headers, services)


@pytest.mark.parametrize("role", ["member", "reader"])
def test_only_an_admin_changes_the_shared_catalog(
    client: TestClient,
    admin_token: str,
    headers: dict[str, str],
    services: Services,
    site: ThreadedSite,
    role: str,
) -> None:
    tenant = make_tenant(client, admin_token, role=role)
    refused = client.post("/v1/sites", json=site.spec(), headers=tenant.headers)
    assert refused.status_code == 403, refused.text
    assert "admin required" in refused.json()["error"]["message"]
    assert_nothing_stored(client, headers, services)
    assert client.post("/v1/sites", json=site.spec(), headers=headers).status_code == 201
    other = f"http://127.0.0.1:{free_port()}/identity/v3"
    patch = client.patch("/v1/sites/edge-1", json={"identity_url": other}, headers=tenant.headers)
    assert patch.status_code == 403
    assert client.delete("/v1/sites/edge-1", headers=tenant.headers).status_code == 403
    endpoints = client.get("/identity/v3/endpoints", headers=headers).json()["endpoints"]
    assert {e["url"] for e in endpoints if e["region_id"] == "Edge1"} == {site.auth_url}


def test_a_stuck_site_is_fixed_with_patch(
    client: TestClient, headers: dict[str, str], services: Services, site: ThreadedSite
) -> None:
    assert client.post("/v1/sites", json=site.spec(), headers=headers).status_code == 201
    at_site = SiteDriver(registry(services).access("edge-1"))
    admin = present(at_site.call("find admin", lambda c: c.identity.find_user("admin")), "admin")
    at_site.call("new password", lambda c: c.identity.update_user(admin.id, password="rotated"))
    with pytest.raises(SiteCallFailed, match="HTTP 401"):
        list_servers_as_cascade(services, "edge-1")  # stuck: the stored password is stale

    credentials = {"username": "admin", "password": "still-wrong", "project_name": "admin"}
    wrong = client.patch("/v1/sites/edge-1", json={"credentials": credentials}, headers=headers)
    assert wrong.status_code == 400, wrong.text
    assert "refused user 'admin'" in wrong.json()["error"]["message"]
    closed = f"http://127.0.0.1:{free_port()}/identity/v3"
    moved = client.patch("/v1/sites/edge-1", json={"identity_url": closed}, headers=headers)
    assert moved.status_code == 502, moved.text
    assert client.get("/v1/sites/edge-1", headers=headers).json()["site"]["identity_url"] == (
        site.auth_url
    )

    credentials["password"] = "rotated"
    fixed = client.patch("/v1/sites/edge-1", json={"credentials": credentials}, headers=headers)
    assert fixed.status_code == 200, fixed.text
    assert "rotated" not in fixed.text
    assert list_servers_as_cascade(services, "edge-1") == []


def _queue_server(client: TestClient, headers: dict[str, str], site: str) -> str:
    spec = {"name": "vm", "flavor": "m1.tiny", "image": "cirros", "site": site}
    accepted = client.post("/v1/servers", json=spec, headers=headers)
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["server"]["id"])


@pytest.mark.timeout(120)
def test_a_dead_site_is_forced_out_and_its_servers_are_marked(
    tmp_path: Path, client: TestClient, headers: dict[str, str], services: Services
) -> None:
    sim = EmbeddedSite(
        "edge-2", tmp_path / "edge-2", "pw", env={"CASCADE_PASSWORD_HASH_ROUNDS": "4"}
    )
    with sim:
        spec = {
            "name": "edge-2",
            "region_name": sim.region,
            "identity_url": sim.auth_url,
            "credentials": {"username": "admin", "password": "pw", "project_name": "admin"},
        }
        assert client.post("/v1/sites", json=spec, headers=headers).status_code == 201
        servers = [_queue_server(client, headers, "edge-2") for _ in range(2)]
        refused = client.delete("/v1/sites/edge-2", headers=headers)
        assert refused.status_code == 409
        assert "force=true" in refused.json()["error"]["message"]
        alive = client.delete("/v1/sites/edge-2", params={"force": "true"}, headers=headers)
        assert alive.status_code == 409, alive.text  # force is for a site that cannot be reached
        assert "answers" in alive.json()["error"]["message"]
        sim.kill()  # SIGKILL

        forced = client.delete("/v1/sites/edge-2", params={"force": "true"}, headers=headers)
    assert forced.status_code == 200, forced.text
    removed = forced.json()
    assert removed["site"] == "edge-2"
    assert sorted(removed["servers"]) == sorted(servers)
    assert "Connect" in removed["reason"]
    assert "2 servers there are marked ERROR" in removed["message"]
    for server_id in servers:
        shown = client.get(f"/v1/servers/{server_id}", headers=headers)
        assert shown.status_code == 200, shown.text
        server = shown.json()["server"]
        assert server["status"] == "ERROR"
        assert "site edge-2 removed by force" in server["error"]
        assert "Connect" in server["error"]
    assert client.get("/v1/sites", headers=headers).json()["sites"] == []
    assert client.get("/v1/sites/edge-2", headers=headers).status_code == 404
    assert sim.region not in catalog_regions(client, headers)
    with services.db.session() as session:
        assert session.get(Region, sim.region) is None
    assert server["site"].startswith("edge-2-removed-")  # the record its servers keep
    with pytest.raises(SiteRemoved, match="removed from Cascade by force"):
        registry(services).access(server["site"])  # what a worker's step would get
