"""Storage replication and createImage at the site-sim: a replicated volume type (its
replication target a directory shared by two sites), a volume of it mirrored at each
snapshot (bytes written after it are not at the replica), its replica adopted at the second
site by reference; Nova's createImage of an image-booted server is an image of its bytes,
a boot-from-volume server is refused."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cascade_sim.app import create_region_app
from tests.conftest import login
from tests.sim.conftest import SITE_ADMIN_PASSWORD, make_site, upload_image
from tests.sim.test_compute import NOVA, boot
from tests.sim.test_compute import wait_status as wait_server
from tests.sim.test_volumes import (
    LATEST,
    V3,
    Headers,
    assert_error,
    create_volume,
    read,
    wait_status,
    write,
)

Site = tuple[TestClient, Headers]


def _replicated_type(client: TestClient, headers: Headers, target: Path) -> None:
    specs = {"replication_enabled": "<is> True", "cascade_sim:replica_dir": str(target)}
    made = client.post(
        f"{V3}/types",
        headers=headers,
        json={"volume_type": {"name": "replicated", "extra_specs": specs}},
    )
    assert made.status_code == 200, made.text


@pytest.fixture
def two_sites(tmp_path: Path) -> Iterator[tuple[Site, Site, Path]]:
    """Two sites, each with the type ``replicated`` whose target is one shared directory."""
    target = tmp_path / "replicas"
    target.mkdir()
    first = make_site(tmp_path / "a")
    second = make_site(tmp_path / "b", name="site-b", port=5102)
    with (
        TestClient(create_region_app(first), base_url=first.config.base_url) as a,
        TestClient(create_region_app(second), base_url=second.config.base_url) as b,
    ):
        sites = []
        for client in (a, b):
            headers = {"X-Auth-Token": login(client, "admin", SITE_ADMIN_PASSWORD, "admin")}
            _replicated_type(client, {**headers, **LATEST}, target)
            sites.append((client, {**headers, **LATEST}))
        yield sites[0], sites[1], target


def test_a_replicated_volume_is_mirrored_at_each_snapshot_and_adopted_at_the_other_site(
    two_sites: tuple[Site, Site, Path],
) -> None:
    (a, at_a), (b, at_b), target = two_sites
    volume = create_volume(a, at_a, volume_type="replicated")
    assert volume["replication_status"] == "enabled"
    assert json.loads(volume["os-volume-replication:driver_data"]) == {"replica": volume["id"]}
    assert create_volume(a, at_a)["replication_status"] == "disabled"
    assert not (target / volume["id"]).exists()  # nothing shipped before a snapshot

    write(a, at_a, volume["id"], 4096, b"shipped")
    snapshot = a.post(
        f"{V3}/snapshots", headers=at_a, json={"snapshot": {"volume_id": volume["id"]}}
    ).json()["snapshot"]
    write(a, at_a, volume["id"], 4096, b"too-late")
    shown = a.get(f"{V3}/volumes/{volume['id']}", headers=at_a).json()["volume"]
    driver_data = json.loads(shown["os-volume-replication:driver_data"])
    assert (driver_data["replica"], driver_data["snapshot"]) == (volume["id"], snapshot["id"])

    listed = b.get(f"{V3}/manageable_volumes", headers=at_b).json()["manageable-volumes"]
    assert {"reference": {"source-name": volume["id"]}, "size": 1, "safe_to_manage": True} in listed
    (pool,) = b.get(f"{V3}/scheduler-stats/get_pools", headers=at_b).json()["pools"]
    assert (pool["name"], pool["capabilities"]["replication_enabled"]) == ("site-b@sim#sim", True)
    managed = b.post(
        f"{V3}/manageable_volumes",
        headers=at_b,
        json={"volume": {"host": pool["name"], "ref": {"source-name": volume["id"]}}},
    )
    assert managed.status_code == 202, managed.text
    adopted = wait_status(b, at_b, f"{V3}/volumes/{managed.json()['volume']['id']}", "available")
    assert read(b, at_b, adopted["id"], 4096, 7) == b"shipped"
    assert not (target / volume["id"]).exists()  # the replica is the adopted volume now


def test_bad_replicated_types_are_refused(site_client: TestClient, site_headers: Headers) -> None:
    for specs in (
        {"replication_enabled": "<is> True"},
        {"replication_enabled": "<is> True", "cascade_sim:replica_dir": "relative/dir"},
        {"replication_enabled": "<is> True", "cascade_sim:replica_dir": "/no/such/dir"},
    ):
        bad = site_client.post(
            f"{V3}/types",
            headers=site_headers,
            json={"volume_type": {"name": "r", "extra_specs": specs}},
        )
        assert_error(bad, 400, "badRequest", "cascade_sim:replica_dir")


def test_create_image_of_an_image_booted_server(
    site_client: TestClient, site_headers: Headers
) -> None:
    data = b"root disk" * 1000
    base = upload_image(site_client, site_headers, data)
    server_id = boot(site_client, site_headers, imageRef=base)
    wait_server(site_client, site_headers, server_id, "ACTIVE")
    action = f"{NOVA}/servers/{server_id}/action"
    body = {"createImage": {"name": "snap", "metadata": {"purpose": "dr"}}}
    old = site_client.post(action, headers=site_headers, json=body)
    assert old.status_code == 202, old.text
    image_id = old.headers["Location"].rsplit("/", 1)[1]
    new = site_client.post(
        action, headers={**site_headers, "OpenStack-API-Version": "compute 2.45"}, json=body
    )
    assert new.status_code == 202, new.text
    assert new.json()["image_id"] != image_id
    image = site_client.get(f"/image/v2/images/{image_id}", headers=site_headers).json()
    assert (image["status"], image["name"], image["purpose"]) == ("active", "snap", "dr")
    assert (image["image_type"], image["instance_uuid"]) == ("snapshot", server_id)
    assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()
    downloaded = site_client.get(f"/image/v2/images/{image_id}/file", headers=site_headers)
    assert downloaded.content == data

    assert (
        site_client.post(action, headers=site_headers, json={"createImage": {}}).status_code == 400
    )
    from_volume = boot(
        site_client,
        site_headers,
        block_device_mapping_v2=[
            {"boot_index": 0, "uuid": base, "source_type": "image", "destination_type": "volume",
             "volume_size": 1}
        ],
    )  # fmt: skip
    wait_server(site_client, site_headers, from_volume, "ACTIVE")
    refused = site_client.post(
        f"{NOVA}/servers/{from_volume}/action", headers=site_headers, json=body
    )
    assert refused.status_code == 409
    assert "boots from a volume" in refused.text
