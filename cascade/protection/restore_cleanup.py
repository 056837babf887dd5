"""A failed restore cleaned up at its target: what it made there is removed again, so a
retry (or a restore elsewhere) starts from nothing, and the restore keeps the reason it
failed next to what was removed (``restores.cleanup``).

In order: each server it made is deleted at the target (``server.remove``), its port given
back to its source server or removed (``restore.release``), and the server's Cascade record
forgotten; then the volumes it made (named ``cascade-restore-{restore}-{volume}``, found by
name, so one made by a step whose record was lost goes too) are deleted and waited for. A
storage_replication restore's volumes are replicas the target adopted by reference: deleting
them would delete the only copy of that consistency point, so they stay and are named as
kept. A clean-up that fails (the target down) says so in the record; the restore's own
error stays the first failure.

May import cascade.protection, cascade.engine, cascade.db, cascade.errors.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from openstack.connection import Connection
from sqlalchemy import delete

from cascade.db.models import Server
from cascade.db.protection_models import Restore
from cascade.engine.context import context
from cascade.engine.workflows import Job, StepFailed, StepRun, step, step_function
from cascade.sites.waits import until_gone


def _restore_volumes(c: Connection, prefix: str) -> list[Any]:
    return [v for v in c.block_storage.volumes(details=True) if (v.name or "").startswith(prefix)]


def _delete_volumes(c: Connection, prefix: str) -> list[str]:
    found = _restore_volumes(c, prefix)
    for volume in found:
        c.block_storage.delete_volume(volume, ignore_missing=True)
    for volume in found:
        until_gone(partial(c.block_storage.get_volume, volume.id))
    return sorted(str(v.id) for v in found)


@step_function("restore.made")
def made_servers(_run: StepRun, restore_id: str) -> list[tuple[str, str]]:
    """(source server, restored server) of every server the restore made."""
    with context().db.session() as session:
        return list(session.get_one(Restore, restore_id).servers.items())


@step_function("restore.forget")
def forget_server(_run: StepRun, restore_id: str, source_id: str, server_id: str) -> None:
    """The restored server gone from the target: its record goes, and the restore's link."""
    with context().db.session() as session:
        session.execute(delete(Server).where(Server.id == server_id))
        restore = session.get_one(Restore, restore_id, with_for_update=True)
        restore.servers = {k: v for k, v in restore.servers.items() if k != source_id}


@step_function("restore.drop_volumes")
def drop_volumes(_run: StepRun, restore_id: str, replicated: bool) -> dict[str, list[str]]:
    """Delete the volumes the restore made at the target (replicas adopted are kept)."""
    engine = context()
    restore = engine.row(Restore, restore_id, f"restore {restore_id}")
    prefix = f"cascade-restore-{restore_id}-"
    driver = engine.driver(restore.target_site_id)
    if replicated:
        kept = driver.call(
            f"list the replicas restore {restore_id} adopted",
            lambda c: sorted(str(v.id) for v in _restore_volumes(c, prefix)),
        )
        return {"volumes": [], "kept_replicas": kept}
    deleted = driver.call(
        f"delete the volumes restore {restore_id} made", lambda c: _delete_volumes(c, prefix)
    )
    return {"volumes": deleted}


@step_function("restore.cleaned")
def record_cleanup(_run: StepRun, restore_id: str, cleanup: dict[str, Any]) -> None:
    with context().db.session() as session:
        session.get_one(Restore, restore_id).cleanup = cleanup


def clean_up(job: Job, site: str, replicated: bool) -> dict[str, Any]:
    """Remove what the failed restore made at the target (see the module); the record."""
    cleanup: dict[str, Any] = {"servers": []}
    try:
        for source_id, server_id in step(
            job, "find the servers made", None, "restore.made", job.resource_id
        ):
            step(job, f"remove server {server_id}", site, "server.remove", server_id)
            step(
                job,
                f"release the port of server {server_id}",
                site,
                "restore.release",
                job.resource_id,
                source_id,
            )
            step(
                job,
                f"forget server {server_id}",
                None,
                "restore.forget",
                job.resource_id,
                source_id,
                server_id,
            )
            cleanup["servers"].append(server_id)
        cleanup |= step(
            job,
            "delete the volumes made",
            site,
            "restore.drop_volumes",
            job.resource_id,
            replicated,
        )
    except StepFailed as failure:
        cleanup["error"] = str(failure)
    step(job, "record the clean-up", None, "restore.cleaned", job.resource_id, cleanup)
    return cleanup
