"""``restore.run``, worker side: a checkpoint brought back at the target site, by its plan's
strategy. Strategy 1 (group_snapshot): each volume is made there and written from its
manifest's chunks, every chunk's hashes checked as it is
read from the store (a corrupt or missing chunk stops the restore naming the chunk, the
block and the volume); then the target's own digests of the volume are compared with the
manifest, block by block. Only once every volume is verified are the servers made, each a
Cascade server booting from its restored boot volume (or from its image, mapped) with its
data volumes attached in their order, on its network (mapped) or on its port on a Cascade
network, with the address it had (``restore_network_steps``). RTO: from the start until
every server is ACTIVE; then the restored ports' remote ports elsewhere follow, and the
service IP asked for moves. A failure removes what the restore made at the target
(``restore_cleanup``). Strategy 2 (storage_replication): each volume is its replica,
managed by reference at the target (``replica_steps``), then the servers as strategy 1's.
Strategy 3 (image_snapshot): the server boots from its image copied to the target.

May import cascade.protection, cascade.compute's and cascade.network's step names (run by
name), cascade.engine, cascade.db, cascade.sites.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from openstack.connection import Connection
from sqlalchemy import select

from cascade.db.models import Server, Site
from cascade.db.protection_models import Checkpoint, CheckpointVolume, ProtectionPlan, Restore
from cascade.engine.context import context
from cascade.engine.workflows import Job, StepFailed, StepRun, handler, step, step_function
from cascade.errors import Conflict
from cascade.protection.backups import PROGRESS_EVERY
from cascade.protection.chunk_store import ChunkCorrupt, ChunkStore, open_store
from cascade.protection.parallel import in_parallel
from cascade.protection.restore_cleanup import clean_up
from cascade.protection.restore_network_steps import (
    follow_ports,
    move_service_ip,
    plug,
    take_port,
)
from cascade.protection.site_blocks import volume_digests, write_block
from cascade.sites.driver import SiteDriver
from cascade.sites.waits import until_status

GIB = 1 << 30


def _now() -> datetime:
    return datetime.now(UTC)


def record_volume(restore_id: str, volume_id: str, **values: Any) -> None:
    """Merge ``values`` into the restore's progress of ``volume_id``."""
    with context().db.session() as session:
        restore = session.get_one(Restore, restore_id, with_for_update=True)
        volumes = dict(restore.volumes)
        volumes[volume_id] = {**volumes.get(volume_id, {}), **values}
        restore.volumes = volumes


@step_function("restore.begin")
def begin(_run: StepRun, restore_id: str) -> dict[str, Any]:
    """The restore running: the plan's strategy, the target site, its volumes in the plan's
    order and its servers (source id, their volumes in device order)."""
    with context().db.session() as session:
        restore = session.get_one(Restore, restore_id)
        restore.status = "running"
        restore.started_at = restore.started_at or _now()
        checkpoint = session.get_one(Checkpoint, restore.checkpoint_id)
        volumes = session.scalars(
            select(CheckpointVolume)
            .where(CheckpointVolume.checkpoint_id == restore.checkpoint_id)
            .order_by(CheckpointVolume.position, CheckpointVolume.device)
        ).all()
        servers: dict[str, list[str]] = {server_id: [] for server_id in checkpoint.images}
        for volume in volumes:
            servers.setdefault(volume.server_id, []).append(volume.volume_id)
        return {
            "strategy": session.get_one(ProtectionPlan, restore.plan_id).strategy,
            "site": session.get_one(Site, restore.target_site_id).name,
            "site_id": restore.target_site_id,
            "volumes": [v.volume_id for v in volumes],
            "servers": list(servers.items()),
            "service_ip": restore.service_ip is not None,
        }


def named_volume(c: Connection, name: str, make: Callable[[], Any]) -> str:
    """The restore's volume ``name`` at the site, found again by name or made by ``make``,
    once available."""
    found = next(iter(c.block_storage.volumes(details=True, name=name)), None)
    if found is None:
        found = make()
    until_status(lambda: c.block_storage.get_volume(found.id), "available")
    return str(found.id)


def _ensure_volume(c: Connection, name: str, size_gib: int, zone: str | None) -> str:
    """The restore's volume at the site, made empty if it is not there yet."""
    return named_volume(
        c,
        name,
        lambda: c.block_storage.create_volume(name=name, size=size_gib, availability_zone=zone),
    )


class VolumeWriter:
    """Writes one manifest's chunks into the target volume, counting progress."""

    def __init__(
        self, restore_id: str, volume_id: str, driver: SiteDriver, store: ChunkStore, target: str
    ) -> None:
        self.restore_id, self.volume_id = restore_id, volume_id
        self.driver, self.store, self.target = driver, store, target
        self.written = 0
        self.lock = threading.Lock()
        self.noted_at = time.monotonic()

    def block(self, item: tuple[str, list[str]]) -> None:
        index, (name, sha256) = int(item[0]), item[1]
        try:
            data = self.store.get(name, sha256)
        except ChunkCorrupt as corrupt:
            raise Conflict(
                f"block {index} of volume {self.volume_id} cannot be restored: "
                f"{corrupt.message}; nothing is booted on it"
            ) from None
        self.driver.call(
            f"write block {index} of volume {self.target}",
            lambda c: write_block(c, self.target, index, data),
        )
        with self.lock:
            self.written += 1
            due = time.monotonic() - self.noted_at >= PROGRESS_EVERY
            if due:
                self.noted_at = time.monotonic()
        if due:
            record_volume(self.restore_id, self.volume_id, written=self.written)


def _verify(driver: SiteDriver, target: str, volume: CheckpointVolume) -> None:
    """The target's digests of the restored volume are the manifest's, block for block."""
    found = driver.call(f"read the digests of volume {target}", lambda c: volume_digests(c, target))
    expected = {int(index): entry[1] for index, entry in volume.blocks.items()}
    wrong = sorted(i for i in found.keys() | expected.keys() if found.get(i) != expected.get(i))
    if wrong:
        raise Conflict(
            f"restored volume {target} differs from volume {volume.volume_id} at the "
            f"consistency point in blocks {wrong[:10]}{' ...' if len(wrong) > 10 else ''}"
        )


@step_function("restore.volume")
def restore_volume(_run: StepRun, restore_id: str, volume_id: str) -> str:
    """Make the volume at the target from its chunks, verified; its id there."""
    engine = context()
    with engine.db.session() as session:
        restore = session.get_one(Restore, restore_id)
        volume = session.get_one(CheckpointVolume, (restore.checkpoint_id, volume_id))
        store_url = session.get_one(Checkpoint, restore.checkpoint_id).store_url
    driver = engine.driver(restore.target_site_id)
    size_gib = max(1, -(-volume.size_bytes // GIB))
    target = driver.call(
        f"make the volume restoring {volume_id}",
        lambda c: _ensure_volume(
            c,
            f"cascade-restore-{restore_id}-{volume_id}",
            size_gib,
            restore.mapping.get("availability_zone"),
        ),
    )
    blocks = len(volume.blocks)
    record_volume(restore_id, volume_id, volume=target, blocks=blocks, written=0, verified=False)
    writer = VolumeWriter(
        restore_id, volume_id, driver, open_store(store_url, engine.driver), target
    )
    for _written in in_parallel(
        writer.block, sorted(volume.blocks.items(), key=lambda i: int(i[0]))
    ):
        pass
    _verify(driver, target, volume)
    record_volume(restore_id, volume_id, written=blocks, verified=True)
    return target


def _block_devices(source: Server, targets: list[str]) -> list[dict[str, Any]]:
    """The restored server's devices: its boot volume first if the source booted from one,
    then its data volumes in their order."""
    boots_from_volume = any(d.get("boot_index") == 0 for d in source.block_devices or [])
    devices = []
    for n, volume in enumerate(targets):
        boot_index = 0 if boots_from_volume and n == 0 else None
        devices.append({"source": "volume", "volume": volume, "boot_index": boot_index})
    return devices


@step_function("restore.server")
def make_server(
    _run: StepRun, restore_id: str, source_id: str, targets: list[str]
) -> tuple[str, str | None, bool]:
    """The Cascade server restoring ``source_id`` at the target (made once): mapped flavor,
    network (or its port on a Cascade network, taken in the same transaction) and image (its
    image copied to the target, for an image_snapshot checkpoint), booting from / attaching
    the restored volumes ``targets``; (its id, its port's id, whether the port moved from
    the source server)."""
    with context().db.session() as session:
        restore = session.get_one(Restore, restore_id, with_for_update=True)
        made = restore.servers.get(source_id)
        port = restore.ports.get(source_id, {})
        if made is not None:
            return made, port.get("port"), "moved_from" in port
        source = session.get_one(Server, source_id)
        mapping = restore.mapping
        copied = session.get_one(Checkpoint, restore.checkpoint_id).images.get(source_id)
        server = Server(
            name=source.name,
            project_id=restore.project_id,
            site_id=restore.target_site_id,
            flavor=mapping["flavors"].get(source.flavor, source.flavor),
            image=copied["target"] if copied else mapping["images"].get(source.image, source.image),
            network=None if port else mapping["networks"].get(source.network, source.network),
            block_devices=_block_devices(source, targets),
            status="BUILD",
            task_operation_id=restore.operation_id,
        )
        session.add(server)
        session.flush()
        moved = bool(port) and port["port"] is not None
        port_id = take_port(session, restore, source_id, server)
        restore.servers = {**restore.servers, source_id: server.id}
        return server.id, port_id, moved


@step_function("restore.active")
def server_active(_run: StepRun, server_id: str) -> None:
    with context().db.session() as session:
        server = session.get_one(Server, server_id)
        server.status, server.task_operation_id = "ACTIVE", None


@step_function("restore.ready")
def ready(_run: StepRun, restore_id: str) -> float | None:
    """Every server ACTIVE with its data verified: the RTO."""
    with context().db.session() as session:
        restore = session.get_one(Restore, restore_id)
        if restore.rto_s is None and restore.started_at is not None:
            restore.rto_s = round((_now() - restore.started_at).total_seconds(), 3)
        return restore.rto_s


@step_function("restore.end")
def end(_run: StepRun, restore_id: str, error: str | None) -> float | None:
    """The restore completed (its RTO) or failed with ``error``."""
    with context().db.session() as session:
        restore = session.get_one(Restore, restore_id)
        restore.status = "failed" if error else "completed"
        restore.error = error
        restore.finished_at = _now()
        return restore.rto_s


def _servers(job: Job, begun: dict[str, Any], targets: dict[str, str]) -> None:
    site, site_id = begun["site"], begun["site_id"]
    made = []
    for source_id, volume_ids in begun["servers"]:
        restored = [targets[v] for v in volume_ids]
        made.append(
            step(
                job,
                f"make server {source_id}",
                site,
                "restore.server",
                job.resource_id,
                source_id,
                restored,
            )
        )
    for server_id, port_id, moved in made:
        site_port_id = plug(job, site, site_id, port_id, moved) if port_id else None
        step(job, f"create server {server_id}", site, "server.ensure", server_id, site_port_id)
    for server_id, port_id, _moved in made:
        step(job, f"wait for server {server_id}", site, "server.wait", server_id, "ACTIVE")
        if port_id is not None:
            step(job, f"locate port {port_id} at {site}", site, "port.locate", port_id)
        step(job, f"server {server_id} active", site, "restore.active", server_id)


@handler("restore.run")
def run(job: Job) -> dict[str, Any]:
    begun = step(job, "begin the restore", None, "restore.begin", job.resource_id)
    site = begun["site"]
    replicated = begun.get("strategy") == "storage_replication"
    targets: dict[str, str] = {}
    result: dict[str, Any] = {}
    error = None
    try:
        for volume_id in begun["volumes"]:
            targets[volume_id] = step(
                job,
                f"{'manage the replica of' if replicated else 'restore'} volume {volume_id}",
                site,
                "restore.replica" if replicated else "restore.volume",
                job.resource_id,
                volume_id,
            )
        _servers(job, begun, targets)
    except StepFailed as failure:
        error = str(failure)
        result["cleanup"] = clean_up(job, site, replicated)
    if error is None:
        result["rto_s"] = step(job, "every server runs", site, "restore.ready", job.resource_id)
        failed = follow_ports(job, job.resource_id)
        result |= {"remote_ports_failed": failed} if failed else {}
        if begun.get("service_ip"):
            result["service_ip"] = move_service_ip(job, site)
    step(job, "end the restore", site, "restore.end", job.resource_id, error)
    if error:
        raise StepFailed(f"restore {job.resource_id} failed: {error}")
    return {"volumes": targets, **result}
