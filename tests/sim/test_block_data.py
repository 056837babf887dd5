"""The site's block-data service: a snapshot's allocated blocks, the blocks changed between two
snapshots of a volume (single and group snapshots), runs of contiguous blocks read in one
response, reads counted per snapshot, blocks written
into a volume and per-block digests compared, bad input, the read-failure fault, and the
changed-block maps surviving a site-sim restart."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from cascade_sim import volume
from cascade_sim.app import create_region_app
from cascade_sim.region import Region
from tests.conftest import login, make_tenant
from tests.sim.conftest import SITE_ADMIN_PASSWORD, make_site
from tests.sim.test_backups import backup, restore
from tests.sim.test_volumes import (
    GIB,
    LATEST,
    V3,
    Headers,
    create_volume,
    wait_status,
    write,
)

BD = "/block-data/v1"
BLOCK = 4 << 20


def snapshot(client: TestClient, headers: Headers, volume_id: str) -> str:
    """A new snapshot of the volume, once available."""
    reply = client.post(
        f"{V3}/snapshots", headers=headers, json={"snapshot": {"volume_id": volume_id}}
    )
    assert reply.status_code == 202, reply.text
    found = wait_status(
        client, headers, f"{V3}/snapshots/{reply.json()['snapshot']['id']}", "available"
    )
    return str(found["id"])


def blocks(client: TestClient, headers: Headers, snapshot_id: str, **params: str) -> list[int]:
    reply = client.get(f"{BD}/snapshots/{snapshot_id}/blocks", headers=headers, params=params)
    assert reply.status_code == 200, reply.text
    assert (reply.json()["block_size"], reply.json()["volume_size"]) == (BLOCK, GIB)
    return list(reply.json()["blocks"])


def read_block(client: TestClient, headers: Headers, snapshot_id: str, index: int) -> bytes:
    reply = client.get(f"{BD}/snapshots/{snapshot_id}/blocks/{index}", headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/octet-stream"
    return bytes(reply.content)


def block_io(client: TestClient, headers: Headers) -> dict[str, Any]:
    reply = client.get("/sim/v1/block-io", headers=headers)
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


def digests(client: TestClient, headers: Headers, path: str) -> dict[str, str]:
    reply = client.get(f"{BD}{path}/digests", headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.json()["block_size"] == BLOCK
    found: dict[str, str] = reply.json()["digests"]
    return found


def assert_block_error(reply: Any, status: int, *words: str) -> None:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == status
    for word in words:
        assert word in error["message"], error["message"]


def test_listing_and_changed_blocks_read_only_what_changed(
    site_client: TestClient, site_headers: Headers
) -> None:
    vol = create_volume(site_client, site_headers)
    for index in (0, 10, 200):
        write(site_client, site_headers, vol["id"], index * BLOCK + 4096, os.urandom(1 << 20))
    first = snapshot(site_client, site_headers, vol["id"])
    assert blocks(site_client, site_headers, first) == [0, 10, 200]

    changed = {10: os.urandom(BLOCK), 50: os.urandom(BLOCK), 255: os.urandom(BLOCK)}
    for index, data in changed.items():
        write(site_client, site_headers, vol["id"], index * BLOCK, data)
    second = snapshot(site_client, site_headers, vol["id"])
    write(site_client, site_headers, vol["id"], 100 * BLOCK, b"after the second snapshot")

    assert blocks(site_client, site_headers, second) == [0, 10, 50, 200, 255]
    assert blocks(site_client, site_headers, second, since=first) == [10, 50, 255]
    assert block_io(site_client, site_headers)["read_bytes"] == {}  # listing reads nothing
    for index, data in changed.items():
        assert read_block(site_client, site_headers, second, index) == data
    assert block_io(site_client, site_headers)["read_bytes"] == {second: 3 * BLOCK}
    run = site_client.get(
        f"{BD}/snapshots/{second}/blocks/9", headers=site_headers, params={"count": 2}
    )
    assert run.status_code == 200, run.text
    assert run.content[BLOCK:] == changed[10]  # block 9 (a hole) then block 10
    assert run.content[:BLOCK] == bytes(BLOCK)
    assert block_io(site_client, site_headers)["read_bytes"] == {second: 5 * BLOCK}
    third = snapshot(site_client, site_headers, vol["id"])
    assert blocks(site_client, site_headers, third, since=second) == [100]
    assert blocks(site_client, site_headers, third, since=first) == [10, 50, 100, 255]


def test_group_snapshot_members_are_tracked(site_client: TestClient, site_headers: Headers) -> None:
    headers = {**site_headers, **LATEST}
    group = site_client.post(f"{V3}/groups", headers=headers, json={"group": {"name": "g"}})
    assert group.status_code == 202, group.text
    group_id = group.json()["group"]["id"]
    members = [create_volume(site_client, headers, group_id=group_id) for _ in range(2)]
    for member in members:
        write(site_client, headers, member["id"], 0, b"before")

    def group_snapshot() -> dict[str, str]:
        reply = site_client.post(
            f"{V3}/group_snapshots",
            headers=headers,
            json={"group_snapshot": {"group_id": group_id}},
        )
        assert reply.status_code == 202, reply.text
        taken = reply.json()["group_snapshot"]["id"]
        wait_status(site_client, headers, f"{V3}/group_snapshots/{taken}", "available")
        listed = site_client.get(f"{V3}/snapshots/detail", headers=headers).json()["snapshots"]
        return {
            s["volume_id"]: wait_status(
                site_client, headers, f"{V3}/snapshots/{s['id']}", "available"
            )["id"]
            for s in listed
            if s["group_snapshot_id"] == taken
        }

    before = group_snapshot()
    write(site_client, headers, members[0]["id"], 7 * BLOCK, b"changed")
    after = group_snapshot()
    changed, unchanged = (m["id"] for m in members)
    assert blocks(site_client, headers, after[changed], since=before[changed]) == [7]
    assert blocks(site_client, headers, after[unchanged], since=before[unchanged]) == []
    assert blocks(site_client, headers, after[changed]) == [0, 7]


def test_a_restore_into_a_volume_counts_the_blocks_it_emptied_as_changed(
    site_client: TestClient, site_headers: Headers
) -> None:
    vol = create_volume(site_client, site_headers)
    write(site_client, site_headers, vol["id"], 0, b"kept by the backup")
    saved = backup(site_client, site_headers, vol["id"])
    write(site_client, site_headers, vol["id"], 20 * BLOCK, b"gone after the restore")
    before = snapshot(site_client, site_headers, vol["id"])
    assert blocks(site_client, site_headers, before) == [0, 20]

    restore(site_client, site_headers, saved["id"], volume_id=vol["id"])
    after = snapshot(site_client, site_headers, vol["id"])
    assert blocks(site_client, site_headers, after) == [0]
    assert blocks(site_client, site_headers, after, since=before) == [0, 20]


def test_a_volume_written_from_a_snapshots_blocks_has_its_digests(
    site_client: TestClient, site_headers: Headers
) -> None:
    source = create_volume(site_client, site_headers)
    for index in (1, 30, 128):
        write(site_client, site_headers, source["id"], index * BLOCK, os.urandom(BLOCK // 2))
    write(site_client, site_headers, source["id"], 3 * BLOCK, bytes(BLOCK))  # allocated zeros
    snap = snapshot(site_client, site_headers, source["id"])
    listed = blocks(site_client, site_headers, snap)
    assert listed == [1, 3, 30, 128]
    expected = digests(site_client, site_headers, f"/snapshots/{snap}")
    assert sorted(map(int, expected)) == [1, 30, 128]  # an all-zero block has no digest

    target = create_volume(site_client, site_headers)
    assert digests(site_client, site_headers, f"/volumes/{target['id']}") == {}
    for index in listed:
        data = read_block(site_client, site_headers, snap, index)
        reply = site_client.put(
            f"{BD}/volumes/{target['id']}/blocks/{index}", content=data, headers=site_headers
        )
        assert reply.status_code == 204, reply.text
    assert digests(site_client, site_headers, f"/volumes/{target['id']}") == expected
    counted = block_io(site_client, site_headers)
    assert counted["written_bytes"] == {target["id"]: 4 * BLOCK}
    assert counted["read_bytes"] == {snap: 4 * BLOCK}


def test_bad_input_and_refusals(
    site_client: TestClient, site_headers: Headers, site: Region
) -> None:
    vol = create_volume(site_client, site_headers)
    other = create_volume(site_client, site_headers)
    first = snapshot(site_client, site_headers, vol["id"])
    second = snapshot(site_client, site_headers, vol["id"])
    elsewhere = snapshot(site_client, site_headers, other["id"])
    url = f"{BD}/snapshots/{second}/blocks"

    mixed = site_client.get(url, headers=site_headers, params={"since": elsewhere})
    assert_block_error(mixed, 409, elsewhere, second, vol["id"], other["id"])
    backwards = site_client.get(
        f"{BD}/snapshots/{first}/blocks", headers=site_headers, params={"since": second}
    )
    assert_block_error(backwards, 400, "not older")
    missing = site_client.get(url, headers=site_headers, params={"since": "nope"})
    assert_block_error(missing, 404, "since", "nope")
    untracked = site.state.get("snapshot", first)
    assert untracked is not None
    del untracked["_cbt"]  # as a snapshot recorded before changed-block tracking began
    site.state.put("snapshot", untracked, untracked["_project_id"])
    before = site_client.get(url, headers=site_headers, params={"since": first})
    assert_block_error(before, 409, first, second, "changed-block tracking")

    assert_block_error(site_client.get(f"{url}/256", headers=site_headers), 400, "outside")
    assert_block_error(site_client.get(f"{url}/-1", headers=site_headers), 400, "outside")
    past_end = site_client.get(f"{url}/250", headers=site_headers, params={"count": 7})
    assert_block_error(past_end, 400, "Block 256", "outside")
    too_long = site_client.get(f"{url}/0", headers=site_headers, params={"count": 17})
    assert_block_error(too_long, 400, "count", "less than or equal to 16")
    put = f"{BD}/volumes/{other['id']}/blocks"
    assert_block_error(
        site_client.put(f"{put}/0", content=b"short", headers=site_headers), 400, "not 5"
    )
    assert_block_error(
        site_client.put(f"{put}/256", content=bytes(BLOCK), headers=site_headers), 400, "outside"
    )
    assert site_client.get(url).status_code == 401
    tenant = make_tenant(site_client, site_headers["X-Auth-Token"])
    hidden = site_client.get(url, headers={"X-Auth-Token": tenant.token})
    assert_block_error(hidden, 404, second)

    project = other["os-vol-tenant-attr:tenant_id"]
    site.state.put("server", {"id": "server-1", "_frozen": False, "_project_id": project}, project)
    volume.attach_volume(
        site, other["id"], server_id="server-1", host="h1", device="/dev/vdb", project_id=project
    )
    in_use = site_client.put(f"{put}/0", content=bytes(BLOCK), headers=site_headers)
    assert_block_error(in_use, 409, other["id"], "in-use")
    assert block_io(site_client, site_headers)["written_bytes"] == {}


def test_block_reads_fail_after_the_fault_count(
    site_client: TestClient, site_headers: Headers
) -> None:
    vol = create_volume(site_client, site_headers)
    write(site_client, site_headers, vol["id"], 0, b"data")
    snap = snapshot(site_client, site_headers, vol["id"])
    faults = site_client.put(
        "/sim/v1/faults", headers=site_headers, json={"block_read_failures_after": 2}
    )
    assert faults.status_code == 200, faults.text
    assert faults.json()["block_read_failures_after"] == 2
    for _ in range(2):
        assert read_block(site_client, site_headers, snap, 0)[:4] == b"data"
    url = f"{BD}/snapshots/{snap}/blocks/0"
    for _ in range(2):
        assert_block_error(site_client.get(url, headers=site_headers), 500, "injected failure")
    assert block_io(site_client, site_headers)["read_bytes"] == {snap: 2 * BLOCK}
    assert site_client.delete("/sim/v1/faults", headers=site_headers).status_code == 204
    assert read_block(site_client, site_headers, snap, 0)[:4] == b"data"


def test_changed_blocks_survive_a_site_sim_restart(tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    with TestClient(create_region_app(site), base_url=site.config.base_url) as client:
        headers = {"X-Auth-Token": login(client, "admin", SITE_ADMIN_PASSWORD, "admin")}
        vol = create_volume(client, headers)
        write(client, headers, vol["id"], 0, b"one")
        first = snapshot(client, headers, vol["id"])
        write(client, headers, vol["id"], 5 * BLOCK, b"two")

    restarted = make_site(tmp_path / "site")
    with TestClient(create_region_app(restarted), base_url=restarted.config.base_url) as client:
        headers = {"X-Auth-Token": login(client, "admin", SITE_ADMIN_PASSWORD, "admin")}
        write(client, headers, vol["id"], 9 * BLOCK, b"three")
        second = snapshot(client, headers, vol["id"])
        assert blocks(client, headers, second, since=first) == [5, 9]
        assert blocks(client, headers, second) == [0, 5, 9]
