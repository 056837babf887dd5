"""Strategy 1 end to end against real site-sims and a real ``cascade worker``: a VNF of three
servers, each booting from a volume and with a data volume, checkpointed at site A (known
bytes written before the consistency point, different bytes after it), backed up into
chunks and restored at site B, where every volume equals its source at the consistency point
block for block and the servers run on the restored volumes. Then incremental backups read
only the changed blocks (counted by the site), retention sweeps the chunks nobody references,
a backup failing midway references nothing and the next one reuses what it stored, site A
killed during a backup fails that checkpoint while an older one still restores at B, and a
corrupt chunk stops a restore before any server is made. The first two tests share the
module's pair of site-sims (they neither stop, kill nor fault one, and count only their own
volumes and snapshots there); the failure test starts its own."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedSite
from cascade.protection.backups import RUN, runs
from cascade.protection.chunk_store import open_store
from cascade.protection.site_blocks import snapshot_digests, volume_digests
from cascade.sites.driver import SiteDriver
from tests.engine.conftest import WorkerFactory, wait_operation
from tests.protection.s3_server import CREDENTIALS, s3_server
from tests.protection.vnf import (
    available_checkpoint,
    make_vnf,
    protect,
    show_checkpoint,
    sim_admin,
    take_checkpoint,
)

BLOCK = 4 << 20
BEFORE, AFTER = b"consistent-", b"too-late---"
BLOCKS = (0, 7, 8, 200)  # blocks of each volume written before the checkpoint (7-8: one read)
__all__ = ["s3_server"]
SHARED = pytest.mark.xdist_group("protection-backups-sites")  # one process starts them once


def _data(site: EmbeddedSite, volume_id: str, method: str, offset: int, body: bytes = b"") -> bytes:
    """PUT: write ``body`` at ``offset`` of the volume; GET: read the 256 bytes there."""
    session = SiteDriver(site.access()).connection.session
    url = f"{site.url}/sim/v1/volumes/{volume_id}/data"
    if method == "PUT":
        session.put(url, params={"offset": offset}, data=body)
        return b""
    return bytes(session.get(url, params={"offset": offset, "length": 256}).content)


def _pattern(prefix: bytes, volume_id: str, block: int) -> bytes:
    return (prefix + f"{volume_id}:{block}:".encode()) * 2


def _write_blocks(
    site: EmbeddedSite, volume_id: str, prefix: bytes, blocks: tuple[int, ...]
) -> None:
    for block in blocks:
        _data(site, volume_id, "PUT", block * BLOCK + 4096, _pattern(prefix, volume_id, block))


def _restore(
    client: TestClient, token: str, checkpoint_id: str, **mapping: Any
) -> tuple[int, dict[str, Any]]:
    response = client.post(
        "/v1/restores",
        headers={"X-Auth-Token": token},
        json={"checkpoint": checkpoint_id, "mapping": mapping},
    )
    return response.status_code, response.json()


def _restored(client: TestClient, token: str, checkpoint_id: str, **mapping: Any) -> dict[str, Any]:
    status, accepted = _restore(client, token, checkpoint_id, **mapping)
    assert status == 202, accepted
    wait_operation(client, token, accepted["operation"]["id"], timeout=240)
    restore: dict[str, Any] = client.get(
        f"/v1/restores/{accepted['restore']['id']}", headers={"X-Auth-Token": token}
    ).json()["restore"]
    return restore


def _volumes(plan: dict[str, Any]) -> list[str]:
    return [v for member in plan["members"] for v in member["volumes"]]


def test_contiguous_blocks_are_read_in_runs_of_at_most_run() -> None:
    assert RUN == 4
    indexes = [*range(10), 12, 14, 15]
    assert runs(indexes) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [12], [14, 15]]
    assert runs([]) == []


@SHARED
def test_a_vnf_protected_at_one_site_is_restored_at_the_other_byte_for_byte(
    client: TestClient,
    admin_token: str,
    shared_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    start_worker("w1")
    source, target = shared_sites
    for site, name in ((source, "vnf-net"), (target, "standby-net")):
        SiteDriver(site.access()).call(  # made once on the module's sites
            "network",
            lambda c, n=name: c.network.find_network(n) or c.network.create_network(name=n),
        )
    servers = make_vnf(client, admin_token, source, 3, boot_volume_gb=1, network="vnf-net")
    plan = protect(client, admin_token, servers, target.site_name)
    volumes = _volumes(plan)
    assert [len(m["volumes"]) for m in plan["members"]] == [2, 2, 2]  # boot + data each
    for volume_id in volumes:
        _write_blocks(source, volume_id, BEFORE, BLOCKS)

    checkpoint = available_checkpoint(client, admin_token, plan["id"])
    assert checkpoint["backed_up_at"] is not None
    assert [v["device"] for v in checkpoint["volumes"]] == ["/dev/vda", "/dev/vdb"] * 3
    assert all(v["status"] == "available" and v["chunks"] >= 3 for v in checkpoint["volumes"])
    for volume_id in volumes:  # after the consistency point: must not be restored
        _write_blocks(source, volume_id, AFTER, (*BLOCKS, 100))

    refused, body = _restore(client, admin_token, checkpoint["id"], flavors={"m1.tiny": "m9.none"})
    assert refused == 400, body  # and the unmapped network is not at the target either
    assert "no flavor 'm9.none', no network 'vnf-net'" in body["error"]["message"]

    mapping = {"flavors": {"m1.tiny": "m1.small"}, "networks": {"vnf-net": "standby-net"}}
    restore = _restored(client, admin_token, checkpoint["id"], **mapping)
    assert restore["status"] == "completed", restore
    assert restore["rto_s"] > 0
    assert set(restore["volumes"]) == set(volumes)
    assert all(v["verified"] and v["written"] == v["blocks"] for v in restore["volumes"].values())
    at_source, at_target = SiteDriver(source.access()), SiteDriver(target.access())
    for one in checkpoint["volumes"]:
        restored = restore["volumes"][one["volume"]]["volume"]
        expected = at_source.call("digests", lambda c, s=one["snapshot"]: snapshot_digests(c, s))
        assert at_target.call("digests", lambda c, v=restored: volume_digests(c, v)) == expected
        for block in BLOCKS:
            wanted = _pattern(BEFORE, one["volume"], block)
            assert _data(target, restored, "GET", block * BLOCK + 4096)[: len(wanted)] == wanted

    assert set(restore["servers"]) == {s["id"] for s in servers}
    for source_id, server_id in restore["servers"].items():
        server = client.get(
            f"/v1/servers/{server_id}", headers={"X-Auth-Token": admin_token}
        ).json()["server"]
        assert (server["status"], server["site"], server["flavor"], server["network"]) == (
            "ACTIVE",
            target.site_name,
            "m1.small",
            "standby-net",
        )
        restored_volumes = [
            restore["volumes"][v["volume"]]["volume"]
            for v in checkpoint["volumes"]
            if v["server"] == source_id
        ]
        attached = at_target.call(
            "attachments",
            lambda c, s=server["site_server_id"]: sorted(
                (a.device, a.volume_id) for a in c.compute.volume_attachments(s)
            ),
        )
        assert attached == list(zip(["/dev/vda", "/dev/vdb"], restored_volumes, strict=True))
    plan = client.get(
        f"/v1/protection-plans/{plan['id']}", headers={"X-Auth-Token": admin_token}
    ).json()["plan"]
    assert plan["rpo_s"] is not None
    assert plan["rpo_s"] > 0
    scraped = client.get("/metrics", headers={"X-Auth-Token": admin_token}).text
    assert f'cascade_protection_rpo_seconds{{name="vnf",plan="{plan["id"]}"}}' in scraped
    assert (
        f'cascade_restore_rto_seconds{{plan="{plan["id"]}",restore="{restore["id"]}"}} ' in scraped
    )


@SHARED
@pytest.mark.parametrize("store_kind", ["directory", "s3"])
def test_incremental_backups_read_only_changed_blocks_and_retention_sweeps_chunks(
    client: TestClient,
    admin_token: str,
    shared_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
    tmp_path: Path,
    store_kind: str,
    request: pytest.FixtureRequest,
) -> None:
    """On a directory and on an S3-compatible server (the worker given its credentials)."""
    if store_kind == "s3":
        url = request.getfixturevalue("s3_server").url(f"chunks-{uuid.uuid4().hex[:8]}")
        start_worker("w1", **CREDENTIALS)
    else:
        url = (tmp_path / "chunks").as_uri()
        start_worker("w1")
    source, target = shared_sites
    servers = make_vnf(client, admin_token, source, 2)
    plan = protect(client, admin_token, servers, target.site_name, retention=1, chunk_store=url)
    assert plan["chunk_store"] == url
    first_volume, second_volume = _volumes(plan)
    for volume_id in (first_volume, second_volume):
        _write_blocks(source, volume_id, BEFORE, tuple(range(0, 256, 8)))  # 32 blocks each
        for block in (254, 255):  # the same bytes twice in each volume: one chunk for all four
            _data(source, volume_id, "PUT", block * BLOCK, b"the same everywhere" * 64)
    full = available_checkpoint(client, admin_token, plan["id"])
    assert [v["changed_blocks"] for v in full["volumes"]] == [34, 34]
    assert [v["chunks"] for v in full["volumes"]] == [34, 34]
    assert sum(v["stored_bytes"] for v in full["volumes"]) == (32 + 32 + 1) * BLOCK
    assert [v["incremental_from"] for v in full["volumes"]] == [None, None]

    _write_blocks(source, first_volume, AFTER, (8, 16, 250))  # about 1% of 256 blocks
    before = sim_admin(source, "GET", "/block-io")["read_bytes"]
    incremental = available_checkpoint(client, admin_token, plan["id"])
    read = sim_admin(source, "GET", "/block-io")["read_bytes"]
    by_volume = {v["volume"]: v for v in incremental["volumes"]}
    assert by_volume[first_volume]["changed_blocks"] == 3
    assert by_volume[first_volume]["read_bytes"] == 3 * BLOCK
    assert by_volume[second_volume]["changed_blocks"] == 0
    assert {v["incremental_from"] for v in incremental["volumes"]} == {full["id"]}
    counted = sum(
        read.get(v["snapshot"], 0) - before.get(v["snapshot"], 0) for v in by_volume.values()
    )
    assert counted == 3 * BLOCK  # counted at the site: 3 of 512 blocks read
    assert by_volume[first_volume]["chunks"] == 35  # 34 blocks, one new (250)

    # retention 1: the full checkpoint went, and with it the two chunks only it referenced
    listed = client.get("/v1/checkpoints", headers={"X-Auth-Token": admin_token}).json()
    assert [c["id"] for c in listed["checkpoints"]] == [incremental["id"]]
    stored = set(open_store(url, pytest.fail).names())
    assert len(stored) == 33 + 32 + 1


def test_a_failed_backup_references_nothing_a_lost_site_leaves_older_checkpoints_restorable(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    start_worker("w1")
    source, target = two_sites
    servers = make_vnf(client, admin_token, source, 1)
    store = tmp_path / "chunks"
    plan = protect(client, admin_token, servers, target.site_name, chunk_store=store.as_uri())
    (volume_id,) = _volumes(plan)
    _write_blocks(source, volume_id, BEFORE, tuple(range(0, 64, 2)))  # 32 blocks

    sim_admin(source, "PUT", "/faults", block_read_failures_after=12)
    accepted = client.post(
        f"/v1/protection-plans/{plan['id']}/checkpoints", headers={"X-Auth-Token": admin_token}
    ).json()
    operation = wait_operation(client, admin_token, accepted["operation"]["id"], timeout=120)
    assert operation["status"] == "failed"
    assert f"the backup of volume {volume_id} failed" in operation["error"]
    failed = client.get(
        f"/v1/checkpoints/{accepted['checkpoint']['id']}", headers={"X-Auth-Token": admin_token}
    ).json()["checkpoint"]
    assert failed["status"] == "failed"
    assert failed["volumes"][0]["chunks"] == 0
    left = {p.name for p in store.rglob("*") if p.is_file()}
    assert 0 < len(left) <= 12  # stored, referenced by nobody

    sim_admin(source, "DELETE", "/faults")
    checkpoint = available_checkpoint(client, admin_token, plan["id"])
    (backed_up,) = checkpoint["volumes"]
    assert backed_up["read_bytes"] == 32 * BLOCK
    assert backed_up["stored_bytes"] == (32 - len(left)) * BLOCK  # the rest were already there

    # site A lost during the next backup: that checkpoint fails, the older one still restores
    _write_blocks(source, volume_id, AFTER, tuple(range(1, 64, 2)))
    sim_admin(source, "PUT", "/faults", latency={"block-data": 0.5})
    lost = take_checkpoint(client, admin_token, plan["id"])
    _wait_for(
        lambda: (
            show_checkpoint(client, admin_token, lost["checkpoint"]["id"])["status"] == "backing-up"
        )
    )
    source.kill()
    operation = wait_operation(client, admin_token, lost["operation"]["id"], timeout=120)
    assert operation["status"] == "failed"
    assert f"the backup of volume {volume_id} failed" in operation["error"]
    assert show_checkpoint(client, admin_token, lost["checkpoint"]["id"])["status"] == "failed"
    restore = _restored(client, admin_token, checkpoint["id"])
    assert restore["status"] == "completed", restore
    assert restore["volumes"][volume_id]["verified"]

    victim = next(p for p in store.rglob("*") if p.is_file())
    victim.write_bytes(b"not what it was")
    restore = _restored(client, admin_token, checkpoint["id"])
    assert restore["status"] == "failed"
    assert f"chunk {victim.parent.name}{victim.name}" in restore["error"]
    assert f"of volume {volume_id}" in restore["error"]
    assert restore["servers"] == {}
    names = SiteDriver(target.access()).call(
        "servers", lambda c: [s.name for s in c.compute.servers()]
    )
    assert len(names) == 1  # the first restore's server only: none was made on bad data


def _wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.1)
