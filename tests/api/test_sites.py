"""/v1/sites: registration makes a catalog region; the credential is write-only."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cascade.services import Services
from tests.api.test_access import SITE


def test_register_list_show_delete(
    client: TestClient, admin_token: str, services: Services
) -> None:
    headers = {"X-Auth-Token": admin_token}
    created = client.post("/v1/sites", json=SITE, headers=headers)
    assert created.status_code == 201, created.text
    site = created.json()["site"]
    assert site["name"] == "edge-1"
    assert "site-secret" not in created.text
    assert "password" not in site
    assert client.get("/v1/sites/edge-1", headers=headers).json()["site"] == site
    assert client.get(f"/v1/sites/{site['id']}", headers=headers).json()["site"] == site
    listing = client.get("/v1/sites", headers=headers)
    assert "site-secret" not in listing.text
    regions = client.get("/identity/v3/regions", headers=headers).json()["regions"]
    assert "Edge1" in {r["id"] for r in regions}
    catalog = client.get("/identity/v3/auth/catalog", headers=headers).json()["catalog"]
    urls = {e["url"] for entry in catalog for e in entry["endpoints"] if e["region_id"] == "Edge1"}
    assert urls == {"http://127.0.0.1:5999/v3"}
    with services.db.session() as session:
        from cascade.db.models import Site

        stored = session.get(Site, site["id"])
        assert stored is not None
        assert b"site-secret" not in stored.credential
        assert services.credentials.decrypt(stored.credential) == "site-secret"
    assert client.delete("/v1/sites/edge-1", headers=headers).status_code == 204
    assert client.get("/v1/sites/edge-1", headers=headers).status_code == 404
    regions = client.get("/identity/v3/regions", headers=headers).json()["regions"]
    assert "Edge1" not in {r["id"] for r in regions}


def test_duplicates_and_bad_input(client: TestClient, admin_token: str) -> None:
    headers = {"X-Auth-Token": admin_token}
    assert client.post("/v1/sites", json=SITE, headers=headers).status_code == 201
    again = client.post("/v1/sites", json=SITE, headers=headers)
    assert again.status_code == 409
    for bad in (
        {**SITE, "name": "Bad Name"},
        {**SITE, "identity_url": "ftp://x"},
        {k: v for k, v in SITE.items() if k != "credentials"},
        {**SITE, "extra": 1},
    ):
        response = client.post("/v1/sites", json=bad, headers=headers)
        assert response.status_code == 400, bad
        assert response.json()["error"]["message"]
