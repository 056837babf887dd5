"""Strategies 2 and 3 end to end against real site-sims and a real ``cascade worker``.

Storage replication: both sites have a volume type replicated to one shared directory; a
server's replicated volume is checkpointed (the barrier's group snapshot is what the site
ships), the source site is stopped, and the restore at the target adopts the replica by
reference: the bytes written before the checkpoint are there, those written after are not,
and the restored server runs with the adopted volume attached. A plan naming a volume that
is not replicated fails naming it.

Image snapshot: one server frozen, imaged and thawed at the source, its image copied to the
target with the same digest, and a server at the target booting from the copy; a failed
quiesce fails the checkpoint naming the server, with no image. A plan of two servers is
refused; retention deletes an expired checkpoint's images at both sites."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedSite
from cascade.sites.driver import SiteDriver
from tests.engine.conftest import WorkerFactory, create_server, wait_operation
from tests.protection.vnf import (
    attach_new_volume,
    available_checkpoint,
    freezes_and_thaws,
    frozen_now,
    make_vnf,
    protect,
    replicated_type,
    show_checkpoint,
    sim_admin,
    take_checkpoint,
    volume_data,
)

OFFSETS = (4096, 7 * (4 << 20) + 512)
BEFORE, AFTER = b"consistent-" * 4, b"too-late---" * 4


def _restored(client: TestClient, token: str, checkpoint_id: str) -> dict[str, Any]:
    response = client.post(
        "/v1/restores", headers={"X-Auth-Token": token}, json={"checkpoint": checkpoint_id}
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    wait_operation(client, token, accepted["operation"]["id"], timeout=240)
    restore: dict[str, Any] = client.get(
        f"/v1/restores/{accepted['restore']['id']}", headers={"X-Auth-Token": token}
    ).json()["restore"]
    return restore


def _server(client: TestClient, token: str, server_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/servers/{server_id}", headers={"X-Auth-Token": token})
    server: dict[str, Any] = response.json()["server"]
    return server


def test_storage_replication_restores_the_replica_managed_by_reference_at_the_target(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    start_worker("w1")
    source, target = two_sites
    replicas = tmp_path / "replicas"
    replicas.mkdir()
    for site in two_sites:
        replicated_type(site, replicas)
    (server,) = make_vnf(client, admin_token, source, 1)  # its data volume is not replicated
    volume_id = attach_new_volume(source, server, volume_type="replicated")

    refused = client.post(
        "/v1/protection-plans",
        headers={"X-Auth-Token": admin_token},
        json={
            "name": "not-replicated",
            "members": [{"server": server["id"]}],
            "target_site": target.site_name,
            "strategy": "storage_replication",
        },
    ).json()
    failed = wait_operation(client, admin_token, refused["operation"]["id"])
    assert failed["status"] == "failed"
    bad = client.get(
        f"/v1/protection-plans/{refused['plan']['id']}", headers={"X-Auth-Token": admin_token}
    ).json()["plan"]
    (plain,) = [v for v in bad["members"][0]["volumes"] if v != volume_id]
    assert bad["status"] == "ERROR"
    assert f"volume {plain} is not replicated at the source site" in bad["error"], bad

    plan = protect(
        client,
        admin_token,
        [server],
        target.site_name,
        strategy="storage_replication",
        members=[{"server": server["id"], "volumes": [volume_id]}],
    )
    for offset in OFFSETS:
        volume_data(source, volume_id, offset, BEFORE)
    checkpoint = available_checkpoint(client, admin_token, plan["id"])
    (recorded,) = checkpoint["volumes"]
    assert (recorded["volume"], recorded["replica"], recorded["status"]) == (
        volume_id,
        volume_id,
        "available",
    )
    assert recorded["chunks"] == 0  # nothing backed up: the storage shipped it
    assert frozen_now(source) == []
    for offset in OFFSETS:  # after the consistency point: not at the replica
        volume_data(source, volume_id, offset, AFTER)

    source.stop()  # site A is lost
    restore = _restored(client, admin_token, checkpoint["id"])
    assert restore["status"] == "completed", restore["error"]
    managed = restore["volumes"][volume_id]["volume"]
    for offset in OFFSETS:
        assert volume_data(target, managed, offset)[: len(BEFORE)] == BEFORE
    restored = _server(client, admin_token, restore["servers"][server["id"]])
    assert (restored["status"], restored["site"]) == ("ACTIVE", target.site_name)
    attached = SiteDriver(target.access()).call(
        "attachments",
        lambda c: [a.volume_id for a in c.compute.volume_attachments(restored["site_server_id"])],
    )
    assert attached == [managed]


def test_image_snapshot_copies_the_image_to_the_target_and_boots_from_it(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    start_worker("w1")
    source, target = two_sites
    accepted = [
        create_server(client, admin_token, f"vm-{n}", site=source.site_name) for n in range(2)
    ]
    for one in accepted:
        assert wait_operation(client, admin_token, one["operation"]["id"])["status"] == "succeeded"
    servers = [_server(client, admin_token, one["server"]["id"]) for one in accepted]

    two = client.post(
        "/v1/protection-plans",
        headers={"X-Auth-Token": admin_token},
        json={
            "name": "two",
            "members": [{"server": s["id"]} for s in servers],
            "target_site": target.site_name,
            "strategy": "image_snapshot",
        },
    )
    assert two.status_code == 400, two.text
    assert "exactly one server" in two.json()["error"]["message"]

    server = servers[0]
    plan = protect(
        client, admin_token, [server], target.site_name, strategy="image_snapshot", retention=1
    )
    sim_admin(source, "PUT", "/faults", quiesce_failures=[server["site_server_id"]])
    accepted = take_checkpoint(client, admin_token, plan["id"])
    failed = wait_operation(client, admin_token, accepted["operation"]["id"])
    assert failed["status"] == "failed"
    assert f"quiesce server {server['id']}" in failed["error"]
    assert show_checkpoint(client, admin_token, accepted["checkpoint"]["id"])["images"] == {}
    sim_admin(source, "DELETE", "/faults")
    first = available_checkpoint(client, admin_token, plan["id"])["images"][server["id"]]
    checkpoint = available_checkpoint(client, admin_token, plan["id"])
    image = checkpoint["images"][server["id"]]
    assert (
        freezes_and_thaws(source, {server["site_server_id"]: 1})
        == [
            ("quiesce", 1),
            ("unquiesce", 1),
        ]
        * 2
    )
    for site, key in ((source, "source"), (target, "target")):  # retention 1: the first went
        names = SiteDriver(site.access()).call("images", lambda c: [i.id for i in c.image.images()])
        assert first[key] not in names
        assert image[key] in names
    at_source = SiteDriver(source.access()).call(
        "source image", lambda c: c.image.get_image(image["source"])
    )
    at_target = SiteDriver(target.access()).call(
        "copied image", lambda c: c.image.get_image(image["target"])
    )
    assert at_source.status == at_target.status == "active"
    assert at_target.checksum == at_source.checksum
    assert at_target.hash_value == at_source.hash_value == image["hash"]
    assert at_target.size == at_source.size == image["size"]

    source.stop()  # site A is lost
    restore = _restored(client, admin_token, checkpoint["id"])
    assert restore["status"] == "completed", restore["error"]
    restored = _server(client, admin_token, restore["servers"][server["id"]])
    assert (restored["status"], restored["site"]) == ("ACTIVE", target.site_name)
    booted = SiteDriver(target.access()).call(
        "server", lambda c: c.compute.get_server(restored["site_server_id"])
    )
    assert booted.image["id"] == image["target"]
