"""Cinder at the site: version documents, volumes holding real (sparse) bytes, snapshots,
clones, groups and group snapshots, attachments and quiesced servers, volumes from images,
manage by reference, and bad input answered in Cinder's error shape."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from cascade_sim import volume
from cascade_sim.errors import SimError
from cascade_sim.region import Region
from tests.conftest import make_tenant
from tests.sim.conftest import upload_image

V3 = "/volume/v3"
GIB = 1 << 30
LATEST = {"OpenStack-API-Version": "volume 3.70"}
Headers = dict[str, str]


def wait_status(
    client: TestClient, headers: Headers, path: str, status: str, timeout: float = 5.0
) -> dict[str, Any]:
    """Poll ``path`` (a Cinder show) until its resource has ``status``."""
    deadline = time.monotonic() + timeout
    while True:
        reply = client.get(path, headers=headers)
        assert reply.status_code == 200, reply.text
        found: dict[str, Any] = next(iter(reply.json().values()))
        if found["status"] == status:
            return found
        assert time.monotonic() < deadline, f"{path} is {found['status']}, not {status}"
        time.sleep(0.02)


def create_volume(client: TestClient, headers: Headers, **spec: Any) -> dict[str, Any]:
    """A new volume (1 GiB unless told), once available."""
    reply = client.post(f"{V3}/volumes", headers=headers, json={"volume": {"size": 1, **spec}})
    assert reply.status_code == 202, reply.text
    return wait_status(client, headers, f"{V3}/volumes/{reply.json()['volume']['id']}", "available")


def write(client: TestClient, headers: Headers, volume_id: str, offset: int, data: bytes) -> None:
    reply = client.put(
        f"/sim/v1/volumes/{volume_id}/data",
        params={"offset": offset},
        content=data,
        headers=headers,
    )
    assert reply.status_code == 204, reply.text


def read(client: TestClient, headers: Headers, volume_id: str, offset: int, length: int) -> bytes:
    reply = client.get(
        f"/sim/v1/volumes/{volume_id}/data",
        params={"offset": offset, "length": length},
        headers=headers,
    )
    assert reply.status_code == 200, reply.text
    return bytes(reply.content)


def checksum(client: TestClient, headers: Headers, volume_id: str) -> str:
    reply = client.get(f"/sim/v1/volumes/{volume_id}/checksum", headers=headers)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["sha256"])


def assert_error(reply: Response, status: int, key: str, words: str = "") -> None:
    """A Cinder error body: ``{key: {"code": status, "message": ...}}``."""
    assert reply.status_code == status, reply.text
    assert reply.json()[key]["code"] == status
    assert words in reply.json()[key]["message"]


def test_version_documents_and_microversion_header(
    site_client: TestClient, site_headers: Headers
) -> None:
    listed = site_client.get("/volume/")
    assert listed.status_code == 300
    assert listed.json()["versions"][0]["id"] == "v3.0"
    shown = site_client.get(f"{V3}", headers={"OpenStack-API-Version": "volume 3.59"})
    assert shown.json()["version"]["version"] == "3.70"
    assert shown.json()["version"]["min_version"] == "3.0"
    assert shown.headers["OpenStack-API-Version"] == "volume 3.59"
    plain = site_client.get(f"{V3}/volumes", headers=site_headers)
    assert plain.headers["OpenStack-API-Version"] == "volume 3.0"
    latest = site_client.get(
        f"{V3}/volumes", headers={**site_headers, "OpenStack-API-Version": "volume latest"}
    )
    assert latest.headers["OpenStack-API-Version"] == "volume 3.70"
    too_new = {**site_headers, "OpenStack-API-Version": "volume 3.99"}
    assert site_client.get(f"{V3}/volumes", headers=too_new).status_code == 406
    garbled = {**site_headers, "OpenStack-API-Version": "volume three"}
    assert_error(site_client.get(f"{V3}/volumes", headers=garbled), 400, "badRequest")


def test_volume_lifecycle_with_real_sparse_bytes(
    site_client: TestClient, site_headers: Headers, site: Region
) -> None:
    created = site_client.post(
        f"{V3}/volumes",
        headers=site_headers,
        json={"volume": {"size": 1, "name": "data", "metadata": {"tier": "gold"}}},
    )
    assert created.status_code == 202
    assert created.json()["volume"]["status"] == "creating"
    data = create_volume(site_client, site_headers)  # a second one, for the listings
    vol = wait_status(
        site_client, site_headers, f"{V3}/volumes/{created.json()['volume']['id']}", "available"
    )
    path = site.config.data_dir / "volumes" / f"{vol['id']}.img"
    assert path.stat().st_size == GIB
    assert path.stat().st_blocks * 512 < (1 << 20)  # sparse on disk

    payload = b"cascade!" * 4096
    write(site_client, site_headers, vol["id"], 5 * (1 << 20), payload)
    assert read(site_client, site_headers, vol["id"], 5 * (1 << 20), len(payload)) == payload
    assert read(site_client, site_headers, vol["id"], 0, 16) == bytes(16)
    written = payload + bytes((1 << 20) - len(payload))
    expected = hashlib.sha256()
    for offset in range(0, GIB, 1 << 20):
        expected.update(written if offset == 5 * (1 << 20) else bytes(1 << 20))
    assert checksum(site_client, site_headers, vol["id"]) == expected.hexdigest()

    project = vol["os-vol-tenant-attr:tenant_id"]
    with_project = site_client.get(f"{V3}/{project}/volumes/detail", headers=site_headers)
    assert {v["id"] for v in with_project.json()["volumes"]} == {vol["id"], data["id"]}
    summary = site_client.get(f"{V3}/volumes", headers=site_headers).json()["volumes"]
    assert set(summary[0]) == {"id", "name", "links"}
    named = site_client.get(f"{V3}/volumes/detail", params={"name": "data"}, headers=site_headers)
    assert [v["id"] for v in named.json()["volumes"]] == [vol["id"]]

    renamed = site_client.put(
        f"{V3}/volumes/{vol['id']}", headers=site_headers, json={"volume": {"name": "renamed"}}
    ).json()["volume"]
    assert (renamed["name"], renamed["metadata"]) == ("renamed", {"tier": "gold"})
    action = f"{V3}/volumes/{vol['id']}/action"
    bootable = site_client.post(
        action, headers=site_headers, json={"os-set_bootable": {"bootable": True}}
    )
    assert bootable.status_code == 200
    extended = site_client.post(action, headers=site_headers, json={"os-extend": {"new_size": 2}})
    assert extended.status_code == 202
    shown = site_client.get(f"{V3}/volumes/{vol['id']}", headers=site_headers).json()["volume"]
    assert (shown["size"], shown["bootable"]) == (2, "true")
    assert path.stat().st_size == 2 * GIB

    assert site_client.delete(f"{V3}/volumes/{vol['id']}", headers=site_headers).status_code == 202
    assert_error(
        site_client.get(f"{V3}/volumes/{vol['id']}", headers=site_headers), 404, "itemNotFound"
    )
    assert not path.exists()


def test_snapshot_volume_from_snapshot_and_clone(
    site_client: TestClient, site_headers: Headers
) -> None:
    vol = create_volume(site_client, site_headers)
    write(site_client, site_headers, vol["id"], 0, b"before" * 1000)
    reply = site_client.post(
        f"{V3}/snapshots", headers=site_headers, json={"snapshot": {"volume_id": vol["id"]}}
    )
    assert reply.status_code == 202, reply.text
    snap = wait_status(
        site_client, site_headers, f"{V3}/snapshots/{reply.json()['snapshot']['id']}", "available"
    )
    write(site_client, site_headers, vol["id"], 0, b"after!" * 1000)

    from_snapshot = create_volume(site_client, site_headers, snapshot_id=snap["id"], size=None)
    assert from_snapshot["snapshot_id"] == snap["id"]
    assert read(site_client, site_headers, from_snapshot["id"], 0, 6000) == b"before" * 1000
    clone = create_volume(site_client, site_headers, source_volid=vol["id"])
    assert read(site_client, site_headers, clone["id"], 0, 6) == b"after!"

    assert_error(
        site_client.delete(f"{V3}/volumes/{vol['id']}", headers=site_headers),
        409,
        "conflictingRequest",
        "dependent snapshots",
    )
    listed = site_client.get(
        f"{V3}/snapshots", params={"volume_id": vol["id"]}, headers=site_headers
    )
    assert [s["id"] for s in listed.json()["snapshots"]] == [snap["id"]]
    assert (
        site_client.delete(f"{V3}/snapshots/{snap['id']}", headers=site_headers).status_code == 202
    )
    assert site_client.delete(f"{V3}/volumes/{vol['id']}", headers=site_headers).status_code == 202


def test_group_snapshot_copies_every_member(site_client: TestClient, site_headers: Headers) -> None:
    headers = {**site_headers, **LATEST}
    assert_error(site_client.get(f"{V3}/groups", headers=site_headers), 404, "itemNotFound", "3.13")
    group_type = site_client.get(f"{V3}/group_types/default", headers=headers).json()["group_type"]
    reply = site_client.post(
        f"{V3}/groups",
        headers=headers,
        json={"group": {"name": "g", "group_type": group_type["id"]}},
    )
    assert reply.status_code == 202, reply.text
    group = wait_status(
        site_client, headers, f"{V3}/groups/{reply.json()['group']['id']}", "available"
    )
    first = create_volume(site_client, headers, group_id=group["id"])
    second = create_volume(site_client, headers)
    added = site_client.post(
        f"{V3}/groups/{group['id']}/action",
        headers=headers,
        json={"update": {"add_volumes": second["id"]}},
    )
    assert added.status_code == 202, added.text
    write(site_client, headers, first["id"], 0, b"first")
    write(site_client, headers, second["id"], 0, b"second")

    reply = site_client.post(
        f"{V3}/group_snapshots", headers=headers, json={"group_snapshot": {"group_id": group["id"]}}
    )
    assert reply.status_code == 202, reply.text
    group_snapshot = wait_status(
        site_client,
        headers,
        f"{V3}/group_snapshots/{reply.json()['group_snapshot']['id']}",
        "available",
    )
    members = [
        s
        for s in site_client.get(f"{V3}/snapshots/detail", headers=headers).json()["snapshots"]
        if s["group_snapshot_id"] == group_snapshot["id"]
    ]
    assert {s["volume_id"] for s in members} == {first["id"], second["id"]}
    for snap in members:
        copy = create_volume(site_client, headers, snapshot_id=snap["id"])
        wanted = b"first" if snap["volume_id"] == first["id"] else b"second"
        assert read(site_client, headers, copy["id"], 0, len(wanted)) == wanted

    assert_error(
        site_client.delete(f"{V3}/snapshots/{members[0]['id']}", headers=headers),
        409,
        "conflictingRequest",
        "group snapshot",
    )
    delete = f"{V3}/groups/{group['id']}/action"
    assert_error(
        site_client.post(delete, headers=headers, json={"delete": {"delete-volumes": True}}),
        409,
        "conflictingRequest",
        "group snapshots",
    )
    dropped = site_client.delete(f"{V3}/group_snapshots/{group_snapshot['id']}", headers=headers)
    assert dropped.status_code == 202
    assert_error(
        site_client.post(delete, headers=headers, json={"delete": {}}),
        409,
        "conflictingRequest",
        "delete-volumes",
    )
    deleted = site_client.post(delete, headers=headers, json={"delete": {"delete-volumes": True}})
    assert deleted.status_code == 202
    assert site_client.get(f"{V3}/volumes/{first['id']}", headers=headers).status_code == 404


def test_attached_volume_refuses_writes_while_server_is_quiesced(
    site_client: TestClient, site_headers: Headers, site: Region
) -> None:
    vol = create_volume(site_client, site_headers)
    project = vol["os-vol-tenant-attr:tenant_id"]
    server = {"id": "server-1", "_frozen": True, "_project_id": project}
    site.state.put("server", server, project)
    attachment = volume.attach_volume(
        site, vol["id"], server_id="server-1", host="h1", device="/dev/vdb", project_id=project
    )
    assert attachment == {
        "id": vol["id"],
        "volumeId": vol["id"],
        "serverId": "server-1",
        "device": "/dev/vdb",
    }
    shown = site_client.get(f"{V3}/volumes/{vol['id']}", headers=site_headers).json()["volume"]
    assert shown["status"] == "in-use"
    assert shown["attachments"][0]["server_id"] == "server-1"
    assert set(shown["attachments"][0]) == {
        "id",
        "server_id",
        "attachment_id",
        "host_name",
        "device",
        "volume_id",
        "attached_at",
    }
    refused = site_client.put(
        f"/sim/v1/volumes/{vol['id']}/data", content=b"x", headers=site_headers
    )
    assert refused.status_code == 409
    assert "quiesced" in refused.json()["error"]["message"]
    site.state.put("server", {**server, "_frozen": False}, project)
    write(site_client, site_headers, vol["id"], 0, b"x")

    with pytest.raises(SimError) as busy:
        volume.attach_volume(
            site, vol["id"], server_id="s2", host="h", device="/dev/vdc", project_id=None
        )
    assert busy.value.status == 409
    with pytest.raises(SimError) as hidden:
        volume.attach_volume(
            site, vol["id"], server_id="s2", host="h", device="/dev/vdc", project_id="other"
        )
    assert hidden.value.status == 404
    assert_error(
        site_client.delete(f"{V3}/volumes/{vol['id']}", headers=site_headers),
        409,
        "conflictingRequest",
        "in-use",
    )
    volume.detach_volume(site, vol["id"], "server-1")
    volume.detach_volume(site, vol["id"], "server-1")  # nothing left to detach: no error
    shown = site_client.get(f"{V3}/volumes/{vol['id']}", headers=site_headers).json()["volume"]
    assert (shown["status"], shown["attachments"]) == ("available", [])


def test_volume_from_image(site_client: TestClient, site_headers: Headers, site: Region) -> None:
    image_id = upload_image(site_client, site_headers, b"boot-sector" * 100)
    vol = create_volume(site_client, site_headers, imageRef=image_id)
    assert vol["bootable"] == "true"
    assert vol["volume_image_metadata"] == {"image_id": image_id}
    assert read(site_client, site_headers, vol["id"], 0, 11) == b"boot-sector"
    project = vol["os-vol-tenant-attr:tenant_id"]
    boot = volume.create_boot_volume(site, project, image_id, 2, "vm")
    shown = site_client.get(f"{V3}/volumes/{boot}", headers=site_headers).json()["volume"]
    assert (shown["status"], shown["size"], shown["bootable"]) == ("available", 2, "true")
    assert read(site_client, site_headers, boot, 0, 11) == b"boot-sector"
    missing = site_client.post(
        f"{V3}/volumes", headers=site_headers, json={"volume": {"size": 1, "imageRef": "nope"}}
    )
    assert_error(missing, 400, "badRequest", "imageRef")
    with pytest.raises(SimError) as no_image:
        volume.create_boot_volume(site, project, "nope", 1, "vm")
    assert no_image.value.status == 400


def test_manage_by_reference(site_client: TestClient, site_headers: Headers, site: Region) -> None:
    headers = {**site_headers, **LATEST}
    unmanaged = site.config.data_dir / "volumes" / "unmanaged"
    unmanaged.mkdir(parents=True, exist_ok=True)
    with (unmanaged / "replica-1").open("wb") as handle:
        handle.truncate(GIB + 1)
        handle.write(b"replicated")
    listed = site_client.get(f"{V3}/manageable_volumes/detail", headers=headers).json()
    assert listed["manageable-volumes"] == [
        {
            "reference": {"source-name": "replica-1"},
            "size": 2,
            "safe_to_manage": True,
            "reason_not_safe": None,
            "cinder_id": None,
            "extra_info": None,
        }
    ]
    reply = site_client.post(
        f"{V3}/manageable_volumes",
        headers=headers,
        json={
            "volume": {
                "host": "site-a@sim#sim",
                "ref": {"source-name": "replica-1"},
                "name": "adopted",
            }
        },
    )
    assert reply.status_code == 202, reply.text
    adopted = wait_status(
        site_client, headers, f"{V3}/volumes/{reply.json()['volume']['id']}", "available"
    )
    assert (adopted["size"], adopted["name"]) == (2, "adopted")
    assert read(site_client, headers, adopted["id"], 0, 10) == b"replicated"
    assert not (unmanaged / "replica-1").exists()
    (unmanaged / "replica-2").write_bytes(b"x")
    (site.config.data_dir / "adopting").hardlink_to(unmanaged / "replica-2")  # mid-adoption
    busy = site_client.post(
        f"{V3}/manageable_volumes",
        headers=headers,
        json={"volume": {"host": "h", "ref": {"source-name": "replica-2"}}},
    )
    assert_error(busy, 409, "conflictingRequest", "already being managed")
    for ref in ({"source-name": "replica-1"}, {"source-name": "../site.db"}, {}):
        bad = site_client.post(
            f"{V3}/manageable_volumes", headers=headers, json={"volume": {"host": "h", "ref": ref}}
        )
        assert_error(bad, 400, "badRequest", "source-name")


def test_bad_input_answers_in_cinder_shape(
    site_client: TestClient, site_headers: Headers, site_token: str
) -> None:
    vol = create_volume(site_client, site_headers)

    def post(body: dict[str, Any]) -> Response:
        reply: Response = site_client.post(f"{V3}/volumes", headers=site_headers, json=body)
        return reply

    assert_error(post({"volume": {"size": 0}}), 400, "badRequest", "volume.size")
    assert_error(post({"volume": {"size": 1, "colour": "red"}}), 400, "badRequest", "colour")
    assert_error(post({"size": 1}), 400, "badRequest", "volume")
    assert_error(post({"volume": {}}), 400, "badRequest", "volume.size")
    assert_error(
        post({"volume": {"snapshot_id": "a", "source_volid": "b"}}),
        400,
        "badRequest",
        "at most one",
    )
    assert_error(
        post({"volume": {"snapshot_id": "nope"}}), 404, "itemNotFound", "volume.snapshot_id"
    )
    assert_error(
        post({"volume": {"size": 1, "volume_type": "ssd"}}), 404, "itemNotFound", "volume_type"
    )
    assert_error(
        post({"volume": {"size": 1, "availability_zone": "mars"}}), 400, "badRequest", "zone"
    )
    assert_error(site_client.get(f"{V3}/volumes/nope", headers=site_headers), 404, "itemNotFound")
    action = f"{V3}/volumes/{vol['id']}/action"

    def act(body: dict[str, Any]) -> Response:
        reply: Response = site_client.post(action, headers=site_headers, json=body)
        return reply

    assert_error(act({"os-explode": None}), 400, "badRequest", "os-explode")
    assert_error(act({"os-extend": {"new_size": 1}}), 400, "badRequest", "new_size")
    assert_error(act({"os-extend": {"size": 3}}), 400, "badRequest", "os-extend")
    assert_error(act({"os-set_bootable": {}}), 400, "badRequest", "bootable")
    assert_error(act({"os-reset_status": {"status": "melted"}}), 400, "badRequest", "status")
    assert_error(act({}), 400, "badRequest", "exactly one")
    assert_error(
        site_client.get(f"{V3}/not-my-project/volumes", headers=site_headers),
        400,
        "badRequest",
        "project_id",
    )
    beyond = site_client.put(
        f"/sim/v1/volumes/{vol['id']}/data",
        params={"offset": GIB - 1},
        content=b"xy",
        headers=site_headers,
    )
    assert beyond.status_code == 400
    assert (
        site_client.get(f"/sim/v1/volumes/{vol['id']}/data", headers=site_headers).status_code
        == 400
    )

    tenant = make_tenant(site_client, site_token)
    assert_error(
        site_client.get(f"{V3}/volumes/{vol['id']}", headers=tenant.headers), 404, "itemNotFound"
    )
    assert site_client.get(f"{V3}/volumes", headers=tenant.headers).json()["volumes"] == []
    own = create_volume(site_client, tenant.headers)
    reset = site_client.post(
        f"{V3}/volumes/{own['id']}/action",
        headers=tenant.headers,
        json={"os-reset_status": {"status": "error"}},
    )
    assert_error(reset, 403, "forbidden")
    everyone = site_client.get(f"{V3}/volumes", params={"all_tenants": 1}, headers=site_headers)
    assert {vol["id"], own["id"]} <= {v["id"] for v in everyone.json()["volumes"]}
    assert (
        site_client.get(f"/sim/v1/volumes/{vol['id']}/checksum", headers=tenant.headers).status_code
        == 404
    )
