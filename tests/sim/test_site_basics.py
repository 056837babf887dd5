"""The emulated region: its own identity copy, its catalog, its faults API."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cascade_sim.region import Region


def test_site_catalog_lists_every_service(
    site_client: TestClient, site_headers: dict[str, str], site: Region
) -> None:
    catalog = site_client.get("/identity/v3/auth/catalog", headers=site_headers).json()["catalog"]
    types = {entry["type"] for entry in catalog}
    assert {"identity", "compute", "block-storage", "network", "image", "object-store"} <= types
    urls = {e["url"] for entry in catalog for e in entry["endpoints"]}
    assert f"{site.config.base_url}/compute/v2.1" in urls
    regions = {e["region_id"] for entry in catalog for e in entry["endpoints"]}
    assert regions == {"site-a"}


def test_faults_need_admin_and_apply(site_client: TestClient, site_headers: dict[str, str]) -> None:
    assert site_client.get("/sim/v1/faults").status_code == 401
    set_ = site_client.put("/sim/v1/faults", json={"unavailable": True}, headers=site_headers)
    assert set_.status_code == 200
    assert site_client.get("/compute/v2.1/servers", headers=site_headers).status_code == 503
    assert site_client.delete("/sim/v1/faults", headers=site_headers).status_code == 204
    assert site_client.get("/sim/v1/faults", headers=site_headers).json()["unavailable"] is False


def test_hosts_have_tunnel_endpoints(site_client: TestClient, site_headers: dict[str, str]) -> None:
    hosts = site_client.get("/sim/v1/site", headers=site_headers).json()["hosts"]
    assert len(hosts) == 4
    assert len({h["tunnel_ip"] for h in hosts}) == 4
    assert all(h["tunnel_ip"].startswith("198.18.") for h in hosts)
