"""Cinder backups at the site: full and incremental backups chunked into the backup store,
restores verified byte for byte, a backup restored at a second site sharing the store, the
``backup_failure_at`` fault, bad input, and recovery after the site-sim is killed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from cascade_sim import volume
from cascade_sim.app import create_region_app
from cascade_sim.region import Region
from cascade_sim.state import new_uuid
from tests.conftest import login
from tests.sim.conftest import SITE_ADMIN_PASSWORD, make_site
from tests.sim.test_volumes import (
    V3,
    Headers,
    assert_error,
    checksum,
    create_volume,
    read,
    wait_status,
    write,
)

MIB = 1 << 20


def start_backup(client: TestClient, headers: Headers, volume_id: str, **spec: Any) -> str:
    reply = client.post(
        f"{V3}/backups", headers=headers, json={"backup": {"volume_id": volume_id, **spec}}
    )
    assert reply.status_code == 202, reply.text
    assert set(reply.json()["backup"]) == {"id", "name", "links"}
    return str(reply.json()["backup"]["id"])


def backup(client: TestClient, headers: Headers, volume_id: str, **spec: Any) -> dict[str, Any]:
    """A finished backup of the volume."""
    backup_id = start_backup(client, headers, volume_id, **spec)
    return wait_status(client, headers, f"{V3}/backups/{backup_id}", "available")


def restore(client: TestClient, headers: Headers, backup_id: str, **spec: Any) -> dict[str, Any]:
    """The volume a restore wrote, once available."""
    reply = client.post(
        f"{V3}/backups/{backup_id}/restore", headers=headers, json={"restore": spec}
    )
    assert reply.status_code == 202, reply.text
    assert reply.json()["restore"]["backup_id"] == backup_id
    return wait_status(
        client, headers, f"{V3}/volumes/{reply.json()['restore']['volume_id']}", "available"
    )


def test_full_and_incremental_backup_and_restore(
    site_client: TestClient, site_headers: Headers, site: Region
) -> None:
    vol = create_volume(site_client, site_headers)
    for offset in (0, 100 * MIB, 900 * MIB):  # three chunks hold data
        write(site_client, site_headers, vol["id"], offset, os.urandom(MIB))
    original = read(site_client, site_headers, vol["id"], 100 * MIB, MIB)
    full = backup(site_client, site_headers, vol["id"], name="full")
    assert (full["object_count"], full["progress"], full["is_incremental"]) == (3, "100%", False)

    write(site_client, site_headers, vol["id"], 100 * MIB, b"changed")
    write(site_client, site_headers, vol["id"], 500 * MIB, b"new chunk")
    incremental = backup(site_client, site_headers, vol["id"], incremental=True)
    assert incremental["is_incremental"] is True
    assert incremental["object_count"] == 2 < full["object_count"]
    store = site.config.backup_store / incremental["id"]
    assert {p.name for p in store.iterdir()} == {"metadata.json", "sha256.json", "chunks"}
    assert len(list((store / "chunks").iterdir())) == 2
    shown = site_client.get(f"{V3}/backups/{full['id']}", headers=site_headers).json()["backup"]
    assert shown["has_dependent_backups"] is True

    restored = restore(site_client, site_headers, incremental["id"])
    assert restored["name"] == f"restore_backup_{incremental['id']}"
    assert checksum(site_client, site_headers, restored["id"]) == checksum(
        site_client, site_headers, vol["id"]
    )
    target = create_volume(site_client, site_headers)
    restore(site_client, site_headers, full["id"], volume_id=target["id"])
    assert read(site_client, site_headers, target["id"], 100 * MIB, MIB) == original
    assert read(site_client, site_headers, target["id"], 500 * MIB, 9) == bytes(9)

    assert_error(
        site_client.delete(f"{V3}/backups/{full['id']}", headers=site_headers),
        409,
        "conflictingRequest",
        "incremental",
    )
    for done in (incremental, full):
        assert (
            site_client.delete(f"{V3}/backups/{done['id']}", headers=site_headers).status_code
            == 202
        )
        assert not (site.config.backup_store / done["id"]).exists()
    assert site_client.get(f"{V3}/backups", headers=site_headers).json()["backups"] == []


def test_backup_of_a_snapshot(site_client: TestClient, site_headers: Headers) -> None:
    vol = create_volume(site_client, site_headers)
    write(site_client, site_headers, vol["id"], 0, b"snapshotted")
    snap = site_client.post(
        f"{V3}/snapshots", headers=site_headers, json={"snapshot": {"volume_id": vol["id"]}}
    ).json()["snapshot"]
    snap = wait_status(site_client, site_headers, f"{V3}/snapshots/{snap['id']}", "available")
    write(site_client, site_headers, vol["id"], 0, b"overwritten")
    made = backup(site_client, site_headers, vol["id"], snapshot_id=snap["id"])
    assert (made["snapshot_id"], made["data_timestamp"]) == (snap["id"], snap["created_at"])
    shown = site_client.get(f"{V3}/snapshots/{snap['id']}", headers=site_headers).json()
    assert shown["snapshot"]["status"] == "available"
    restored = restore(site_client, site_headers, made["id"])
    assert read(site_client, site_headers, restored["id"], 0, 11) == b"snapshotted"


@pytest.fixture
def two_sites(tmp_path: Path) -> Iterator[tuple[TestClient, Headers, TestClient, Headers]]:
    """Two sites, each in its own client, sharing one backup store."""
    shared = tmp_path / "backup-store"
    first = make_site(tmp_path / "a", backup_dir=shared)
    second = make_site(tmp_path / "b", name="site-b", port=5102, backup_dir=shared)
    with (
        TestClient(create_region_app(first), base_url=first.config.base_url) as a,
        TestClient(create_region_app(second), base_url=second.config.base_url) as b,
    ):
        yield (
            a,
            {"X-Auth-Token": login(a, "admin", SITE_ADMIN_PASSWORD, "admin")},
            b,
            {"X-Auth-Token": login(b, "admin", SITE_ADMIN_PASSWORD, "admin")},
        )


def test_backup_restores_at_a_second_site_sharing_the_store(
    two_sites: tuple[TestClient, Headers, TestClient, Headers],
) -> None:
    a, at_a, b, at_b = two_sites
    vol = create_volume(a, at_a)
    payload = os.urandom(3 * MIB)
    write(a, at_a, vol["id"], 7 * MIB, payload)
    made = backup(a, at_a, vol["id"])
    assert b.get(f"{V3}/backups", headers=at_b).json()["backups"] == []  # not imported yet
    shown = b.get(f"{V3}/backups/{made['id']}", headers=at_b)
    assert shown.status_code == 200, shown.text
    assert (shown.json()["backup"]["status"], shown.json()["backup"]["size"]) == ("available", 1)
    restored = restore(b, at_b, made["id"], name="disaster-recovery")
    assert restored["name"] == "disaster-recovery"
    assert read(b, at_b, restored["id"], 7 * MIB, len(payload)) == payload
    assert_error(b.get(f"{V3}/backups/{new_uuid()}", headers=at_b), 404, "itemNotFound")


def test_backup_failure_fault_errors_and_cleans_up(
    site_client: TestClient, site_headers: Headers, site: Region
) -> None:
    vol = create_volume(site_client, site_headers)
    for offset in (0, 4 * MIB, 1000 * MIB):
        write(site_client, site_headers, vol["id"], offset, b"data")
    faults = site_client.put(
        "/sim/v1/faults", headers=site_headers, json={"backup_failure_at": 0.5}
    )
    assert faults.status_code == 200
    failed_id = start_backup(site_client, site_headers, vol["id"])
    failed = wait_status(site_client, site_headers, f"{V3}/backups/{failed_id}", "error")
    assert "injected fault" in failed["fail_reason"]
    assert not (site.config.backup_store / failed_id).exists()
    assert (
        site_client.get(f"{V3}/volumes/{vol['id']}", headers=site_headers).json()["volume"][
            "status"
        ]
        == "available"
    )
    assert site.faults.backup_failure_at is None
    assert backup(site_client, site_headers, vol["id"])["object_count"] == 3
    assert site_client.delete(f"{V3}/backups/{failed_id}", headers=site_headers).status_code == 202


def test_backup_bad_input(site_client: TestClient, site_headers: Headers, site: Region) -> None:
    vol = create_volume(site_client, site_headers)

    def post(spec: dict[str, Any]) -> Response:
        reply: Response = site_client.post(f"{V3}/backups", headers=site_headers, json=spec)
        return reply

    assert_error(post({"backup": {"volume_id": "nope"}}), 404, "itemNotFound", "backup.volume_id")
    assert_error(post({"backup": {}}), 400, "badRequest", "volume_id")
    assert_error(
        post({"backup": {"volume_id": vol["id"], "colour": 1}}), 400, "badRequest", "colour"
    )
    assert_error(
        post({"backup": {"volume_id": vol["id"], "incremental": True}}),
        400,
        "badRequest",
        "incremental",
    )
    assert_error(
        post({"backup": {"volume_id": vol["id"], "snapshot_id": "nope"}}),
        404,
        "itemNotFound",
        "backup.snapshot_id",
    )
    volume.attach_volume(
        site, vol["id"], server_id="s1", host="h", device="/dev/vdb", project_id=None
    )
    assert_error(post({"backup": {"volume_id": vol["id"]}}), 409, "conflictingRequest", "force")
    forced = backup(site_client, site_headers, vol["id"], force=True)
    in_use = site_client.get(f"{V3}/volumes/{vol['id']}", headers=site_headers).json()["volume"]
    assert in_use["status"] == "in-use"

    restore_to = f"{V3}/backups/{forced['id']}/restore"
    assert_error(
        site_client.post(restore_to, headers=site_headers, json={"volume_id": vol["id"]}),
        400,
        "badRequest",
        "restore",
    )
    assert_error(
        site_client.post(
            restore_to, headers=site_headers, json={"restore": {"volume_id": vol["id"]}}
        ),
        409,
        "conflictingRequest",
        "in-use",
    )
    big = create_volume(site_client, site_headers, size=2)
    big_backup = backup(site_client, site_headers, big["id"])
    small = create_volume(site_client, site_headers)
    assert_error(
        site_client.post(
            f"{V3}/backups/{big_backup['id']}/restore",
            headers=site_headers,
            json={"restore": {"volume_id": small["id"]}},
        ),
        400,
        "badRequest",
        "smaller",
    )
    assert_error(
        site_client.post(f"{V3}/backups/nope/restore", headers=site_headers, json={"restore": {}}),
        404,
        "itemNotFound",
    )


def test_recovery_after_the_site_sim_is_killed(
    site_client: TestClient, site_headers: Headers, site: Region
) -> None:
    vol = create_volume(site_client, site_headers)
    write(site_client, site_headers, vol["id"], 0, b"survives")
    snap = site_client.post(
        f"{V3}/snapshots", headers=site_headers, json={"snapshot": {"volume_id": vol["id"]}}
    ).json()["snapshot"]
    # what a SIGKILL leaves behind: a copy into a new volume and a backup, both mid-flight
    stored = site.state.get("volume", vol["id"])
    assert stored is not None
    project = stored["_project_id"]
    copying = {**stored, "id": new_uuid(), "status": "creating"}
    copying["_job"] = {"kind": "snapshot", "source": snap["id"]}
    site.state.put("volume", copying, project)
    site.state.put(
        "volume", {**stored, "status": "backing-up", "_previous_status": "available"}, project
    )
    running = new_uuid()
    site.state.put(
        "backup",
        {
            "id": running,
            "status": "creating",
            "_source": ["volume", vol["id"]],
            "_project_id": project,
            "_created": 0,
        },
        project,
    )
    unmanaged = site.config.data_dir / "volumes" / "unmanaged"
    unmanaged.mkdir(exist_ok=True)
    (unmanaged / "replica").write_bytes(b"r")
    orphan = site.config.data_dir / "volumes" / f"{new_uuid()}.img"
    orphan.hardlink_to(unmanaged / "replica")  # a manage linked the file but recorded nothing
    partial = site.config.backup_store / running / "chunks"
    partial.mkdir(parents=True)
    (partial / "00000000").write_bytes(b"half")

    restarted = make_site(site.config.data_dir)
    with TestClient(create_region_app(restarted), base_url=restarted.config.base_url) as client:
        headers = {"X-Auth-Token": login(client, "admin", SITE_ADMIN_PASSWORD, "admin")}
        copied = wait_status(client, headers, f"{V3}/volumes/{copying['id']}", "available")
        assert read(client, headers, copied["id"], 0, 8) == b"survives"
        failed = client.get(f"{V3}/backups/{running}", headers=headers).json()["backup"]
        assert failed["status"] == "error"
        assert "stopped" in failed["fail_reason"]
        assert not (site.config.backup_store / running).exists()
        source = client.get(f"{V3}/volumes/{vol['id']}", headers=headers).json()["volume"]
        assert source["status"] == "available"
        assert (unmanaged / "replica").stat().st_nlink == 1
        assert not orphan.exists()
