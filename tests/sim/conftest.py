"""Fixtures for the emulated region: a bootstrapped site in tmp_path served in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cascade_sim.app import create_region_app
from cascade_sim.region import Region, RegionConfig
from tests.conftest import login

SITE_ADMIN_PASSWORD = "site-admin-password"


def make_site(data_dir: Path, name: str = "site-a", port: int = 5101, **extra: object) -> Region:
    config = RegionConfig(
        name=name,
        data_dir=data_dir,
        port=port,
        admin_password=SITE_ADMIN_PASSWORD,
        password_hash_rounds=4,
        build_seconds=0.2,
        **extra,
    )  # type: ignore[arg-type]
    site = Region(config)
    site.bootstrap()
    return site


@pytest.fixture
def site(tmp_path: Path) -> Region:
    return make_site(tmp_path / "site-a")


@pytest.fixture
def site_client(site: Region) -> Iterator[TestClient]:
    with TestClient(create_region_app(site), base_url=site.config.base_url) as client:
        yield client


@pytest.fixture
def site_token(site_client: TestClient) -> str:
    return login(site_client, "admin", SITE_ADMIN_PASSWORD, "admin")


@pytest.fixture
def site_headers(site_token: str) -> dict[str, str]:
    return {"X-Auth-Token": site_token}


def upload_image(client: TestClient, headers: dict[str, str], data: bytes = b"boot" * 1024) -> str:
    """An active image at the site holding ``data``; returns its id."""
    image = client.post(
        "/image/v2/images",
        headers=headers,
        json={"name": "img", "disk_format": "raw", "container_format": "bare"},
    ).json()
    stored = client.put(
        f"/image/v2/images/{image['id']}/file",
        content=data,
        headers={**headers, "Content-Type": "application/octet-stream"},
    )
    assert stored.status_code == 204, stored.text
    return str(image["id"])
