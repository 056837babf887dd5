"""``cascade bench protect``: strategy 1's backups and restores (issue 16) end to end through
Cascade's API, against a plain ``cp`` + ``sync`` of a file of the same size, same disk, same
run.

An embedded Cascade, one ``cascade worker`` and two site-sims (source and target) share one
temporary directory, the plans' ``file://`` chunk stores too (the same disk).

- **Throughput**: one server with a ``--volume-gb`` data volume holding ``--fill-mb`` MiB of
  random bytes (written through the site-sim's data API in 32 MiB pieces); checkpoint 1 (the
  full backup); ``--changed-percent`` of the volume's 4 MiB blocks rewritten at random;
  checkpoint 2 (the incremental); checkpoint 2 restored at the target, verified. A backup's
  or a restore's time is its step's in the operation record, as the worker timed it
  (``back up volume V`` / ``restore volume V``: started_at to finished_at): no freeze,
  snapshot or server boot is in it. Rates are MiB of volume covered per second (its size
  over that time). The incremental's read fraction is the checkpoint's ``read_bytes`` over
  the volume's size, cross-checked with the site's own counter (``/sim/v1/block-io``). The
  reference: ``cp`` of a random file of ``--fill-mb`` MiB in the same directory, then
  ``sync`` of the copy. The disk is synced before the reference and before each checkpoint.
- **Recovery**: ``--vms`` servers, each with a 1 GiB volume (the site's volumes are whole
  GiB) holding ``--vm-fill-mb`` MiB; one checkpoint (``freeze_window_s``: its first freeze
  to its last thaw) restored at the target (``rto_s``: the restore's, start until every
  server is ACTIVE on verified volumes).
- The chunk-name candidates' hash rates (``cascade.protection.chunks.hash_rates``), and the
  machine's 1-minute load average at the start and at the end (the figures move with it).

With ``--json`` the last line of output is one JSON object. May import cascade.cli (the
engine and site benches, clients, embedded, netlab), cascade.protection.chunks,
cascade.sites and cascade.db.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from openstack.connection import Connection
from rich.console import Console
from rich.table import Table

from cascade.cli.bench import engine
from cascade.cli.bench.site import SiteClient
from cascade.cli.clients import SessionClient, login, password_auth_plugin
from cascade.cli.embedded import EmbeddedCascade, EmbeddedSite, EmbeddedWorker
from cascade.cli.netlab import finished
from cascade.db import Database
from cascade.protection.chunks import hash_rates
from cascade.sites.driver import SiteDriver

console = Console()
PASSWORD = engine.PASSWORD  # the engine bench's sites are started with it
SOURCE, TARGET = "bench-source", "bench-target"
IMAGE = engine.IMAGE
MIB, GIB = 1 << 20, 1 << 30
BLOCK = 4 * MIB  # the site's block-data block
PIECE = 32 * MIB  # bytes per write through the site-sim's data API
DEADLINE = 1800.0  # seconds an operation may take before the bench gives up
AIM_FULL_VS_COPY, AIM_READ_FRACTION = 0.7, 0.05
TIMING = (
    "backup and restore times: their steps in the operation record (started_at to "
    "finished_at, timed by the worker; no freeze, snapshot or boot in them)"
)


@dataclass(frozen=True)
class Rig:
    api: SessionClient  # Cascade's /v1 as its admin
    source: EmbeddedSite
    sim: SiteClient  # the source site's admin: its data API and block-io counters
    work: Path


def _site(stack: ExitStack, work: Path, name: str, api: SessionClient) -> EmbeddedSite:
    """A site-sim holding the bench's image (the engine bench's), registered in Cascade."""
    site = engine._start_site(work, name, 0, stack)
    credentials = {"username": "admin", "password": PASSWORD, "project_name": "admin"}
    body = {"name": name, "region_name": site.region, "identity_url": site.auth_url}
    api.call("POST", "/v1/sites", {**body, "credentials": credentials}, 201)
    return site


def _start(stack: ExitStack, work: Path) -> Rig:
    data_dir = work / "cascade"
    url = f"sqlite:///{data_dir / 'cascade.db'}"
    env = {"CASCADE_DATABASE_URL": url, "CASCADE_PASSWORD_HASH_ROUNDS": "4"}
    env["CASCADE_LOG_LEVEL"] = "warning"
    cascade = stack.enter_context(EmbeddedCascade(data_dir, PASSWORD, env=env))
    db = Database(url)
    stack.callback(db.dispose)
    worker = EmbeddedWorker(data_dir, "bench-w1", db, env=env)
    stack.callback(worker.stop)
    worker.start(timeout=60)
    api = SessionClient(
        login(password_auth_plugin(f"{cascade.url}/identity/v3", PASSWORD)), cascade.url
    )
    source = _site(stack, work, SOURCE, api)
    _site(stack, work, TARGET, api)
    return Rig(api, source, SiteClient(source.port, PASSWORD), work)


def _step_s(operation: dict[str, Any], name: str) -> float:
    """Seconds the operation's step ``name`` took, as the worker recorded it."""
    step = next(s for s in operation["steps"] if s["name"] == name)
    started, ended = (datetime.fromisoformat(step[k]) for k in ("started_at", "finished_at"))
    return (ended - started).total_seconds()


def _data_volume(c: Connection, site_server_id: str, size_gib: int) -> str:
    volume = c.block_storage.create_volume(size=size_gib, name=f"data-{site_server_id}")
    c.block_storage.wait_for_status(volume, "available", wait=120, interval=0.2)
    c.compute.create_volume_attachment(site_server_id, volume_id=volume.id)
    c.block_storage.wait_for_status(volume, "in-use", wait=120, interval=0.2)
    return str(volume.id)


def _servers(rig: Rig, prefix: str, count: int, volume_gb: int) -> list[tuple[str, str]]:
    """``count`` ACTIVE servers at the source, each with a data volume attached there:
    (server id, volume id) pairs."""
    spec = {"site": SOURCE, "flavor": "m1.tiny", "image": IMAGE}
    accepted = [
        rig.api.call("POST", "/v1/servers", {"name": f"{prefix}-{n}", **spec}, 202)
        for n in range(count)
    ]
    driver = SiteDriver(rig.source.access())
    made = []
    for one in accepted:
        finished(rig.api, one, DEADLINE)
        server = rig.api.call("GET", f"/v1/servers/{one['server']['id']}")["server"]
        attach = partial(_data_volume, site_server_id=server["site_server_id"], size_gib=volume_gb)
        volume = driver.call("attach a data volume", attach)
        made.append((server["id"], volume))
    return made


def _write(rig: Rig, volume_id: str, offset: int, size: int) -> None:
    """Random bytes into the volume at ``offset``, as a guest would write them."""
    for start in range(offset, offset + size, PIECE):
        rig.sim.http.send(
            "PUT",
            f"/sim/v1/volumes/{volume_id}/data?offset={start}",
            expect=204,
            headers={"Content-Type": "application/octet-stream"},
            data=os.urandom(min(PIECE, offset + size - start)),
        )


def _plan(rig: Rig, name: str, servers: list[tuple[str, str]]) -> str:
    store = rig.work / f"chunks-{name}"
    body = {
        "name": name,
        "members": [{"server": server} for server, _volume in servers],
        "target_site": TARGET,
        "chunk_store": store.as_uri(),
    }
    accepted = rig.api.call("POST", "/v1/protection-plans", body, 202)
    finished(rig.api, accepted, DEADLINE)
    return str(accepted["plan"]["id"])


def _checkpoint(rig: Rig, plan_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new checkpoint of the plan once available, and its operation."""
    os.sync()  # what the fill left dirty is not written back during the backup
    accepted = rig.api.call("POST", f"/v1/protection-plans/{plan_id}/checkpoints", None, 202)
    operation = finished(rig.api, accepted, DEADLINE)
    checkpoint = rig.api.call("GET", f"/v1/checkpoints/{accepted['checkpoint']['id']}")
    return checkpoint["checkpoint"], operation


def _restore(rig: Rig, checkpoint_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checkpoint restored at the target, verified; the restore and its operation."""
    accepted = rig.api.call("POST", "/v1/restores", {"checkpoint": checkpoint_id}, 202)
    operation = finished(rig.api, accepted, DEADLINE)
    restore: dict[str, Any] = rig.api.call("GET", f"/v1/restores/{accepted['restore']['id']}")
    return restore["restore"], operation


def _verified(restore: dict[str, Any]) -> bool:
    return all(v["verified"] and v["written"] == v["blocks"] for v in restore["volumes"].values())


def _site_read_bytes(rig: Rig, snapshot_id: str) -> int:
    return int(rig.sim.call("GET", "/sim/v1/block-io")["read_bytes"].get(snapshot_id, 0))


def _changed_blocks(volume_gb: int, fill_mb: int, percent: float) -> list[int]:
    """Random distinct blocks among those filled: ``percent`` of the volume's blocks."""
    filled = -(-fill_mb * MIB // BLOCK)
    wanted = max(1, round(volume_gb * GIB // BLOCK * percent / 100))
    return sorted(random.sample(range(filled), min(filled, wanted)))


def _throughput(rig: Rig, volume_gb: int, fill_mb: int, percent: float) -> dict[str, Any]:
    (server, volume), *_ = _servers(rig, "throughput", 1, volume_gb)
    console.print(f"writing {fill_mb} MiB of random bytes into a {volume_gb} GiB volume")
    _write(rig, volume, 0, fill_mb * MIB)
    plan = _plan(rig, "throughput", [(server, volume)])
    size_mib = volume_gb * GIB / MIB
    step = f"back up volume {volume}"
    console.print("checkpoint 1: the full backup")
    _full, operation = _checkpoint(rig, plan)
    full_s = _step_s(operation, step)
    changed = _changed_blocks(volume_gb, fill_mb, percent)
    console.print(f"rewriting {len(changed)} random 4 MiB blocks; checkpoint 2: incremental")
    for block in changed:
        _write(rig, volume, block * BLOCK, BLOCK)
    incremental, operation = _checkpoint(rig, plan)
    incremental_s = _step_s(operation, step)
    (backed_up,) = incremental["volumes"]
    console.print("restoring checkpoint 2 at the target")
    restore, operation = _restore(rig, incremental["id"])
    restore_s = _step_s(operation, f"restore volume {volume}")
    return {
        "volume_mb": size_mib,
        "fill_mb": fill_mb,
        "changed_blocks": len(changed),
        "full_backup_s": full_s,
        "full_backup_mb_per_s": size_mib / full_s,
        "incremental_s": incremental_s,
        "incremental_mb_per_s": size_mib / incremental_s,
        "incremental_read_fraction": backed_up["read_bytes"] / (volume_gb * GIB),
        "incremental_read_bytes": backed_up["read_bytes"],
        "incremental_read_bytes_at_site": _site_read_bytes(rig, backed_up["snapshot"]),
        "restore_s": restore_s,
        "restore_mb_per_s": size_mib / restore_s,
        "restore_verified": _verified(restore),
    }


def _recovery(rig: Rig, vms: int, fill_mb: int) -> dict[str, Any]:
    servers = _servers(rig, "rto", vms, 1)
    console.print(f"{vms} servers, {fill_mb} MiB of random bytes in each one's 1 GiB volume")
    for _server, volume in servers:
        _write(rig, volume, 0, fill_mb * MIB)
    checkpoint, _operation = _checkpoint(rig, _plan(rig, "rto", servers))
    console.print(f"restoring the {vms} servers at the target")
    restore, _operation = _restore(rig, checkpoint["id"])
    return {
        "rto_vms": vms,
        "rto_fill_mb": fill_mb,
        "freeze_window_s": checkpoint["freeze_window_s"],
        "rto_s": restore["rto_s"],
        "rto_verified": _verified(restore),
    }


def _copy_sync_mb_per_s(work: Path, mib: int) -> float:
    """``cp`` of a random file of ``mib`` MiB in ``work``, then ``sync`` of the copy."""
    source, copy = work / "reference-source", work / "reference-copy"
    with source.open("wb") as writer:
        for start in range(0, mib * MIB, PIECE):
            writer.write(os.urandom(min(PIECE, mib * MIB - start)))
    os.sync()
    started = time.perf_counter()
    subprocess.run(["cp", str(source), str(copy)], check=True)
    subprocess.run(["sync", str(copy)], check=True)
    seconds = time.perf_counter() - started
    source.unlink()
    copy.unlink()
    return mib / seconds


def _aims(figures: dict[str, Any]) -> dict[str, bool]:
    return {
        f"full_backup_vs_copy_sync >= {AIM_FULL_VS_COPY}": figures["full_backup_vs_copy_sync"]
        >= AIM_FULL_VS_COPY,
        f"incremental_read_fraction <= {AIM_READ_FRACTION}": figures["incremental_read_fraction"]
        <= AIM_READ_FRACTION,
        "restore verified": figures["restore_verified"] and figures["rto_verified"],
    }


def _report(figures: dict[str, Any]) -> None:
    table = Table("figure", "value", title="cascade bench protect")
    for key, value in figures.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v:,.1f}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:,.3f}"
        table.add_row(key, str(value))
    console.print(table)
    console.print(TIMING)
    at_site = figures["incremental_read_bytes_at_site"]
    agrees = "agrees" if at_site == figures["incremental_read_bytes"] else "[red]differs[/red]"
    console.print(f"incremental read bytes counted by the site: {at_site:,} ({agrees})")
    for aim, met in _aims(figures).items():
        console.print(f"aim {aim}: {'met' if met else '[red]not met[/red]'}")


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    return round(value, 4) if isinstance(value, float) else value


def protect(
    volume_gb: Annotated[int, typer.Option(min=1, max=16, help="Throughput volume (GiB)")] = 1,
    fill_mb: Annotated[
        int | None, typer.Option(min=4, help="MiB of it filled [default: all of it]")
    ] = None,
    changed_percent: Annotated[
        float, typer.Option(min=0.01, max=100, help="Blocks changed for the incremental (%)")
    ] = 1.0,
    vms: Annotated[int, typer.Option(min=1, max=16, help="Servers of the RTO scenario")] = 3,
    vm_fill_mb: Annotated[
        int, typer.Option(min=4, max=1024, help="MiB filled in each one's 1 GiB volume")
    ] = 256,
    hash_mb: Annotated[int, typer.Option(min=1, max=1024, help="MiB hashed per rate")] = 128,
    as_json: Annotated[bool, typer.Option("--json", help="Print figures as JSON last")] = False,
) -> None:
    """Full and incremental backup, restore, RTO and freeze window of protection plans,
    against cp + sync of the same size."""
    fill = volume_gb * 1024 if fill_mb is None else fill_mb
    if fill > volume_gb * 1024:
        raise typer.BadParameter(f"--fill-mb {fill} is more than the {volume_gb} GiB volume")
    load_at_start = os.getloadavg()[0]
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cascade-bench-")))
        console.print(f"reference: cp of a {fill} MiB file + sync, same disk")
        figures: dict[str, Any] = {"copy_sync_mb_per_s": _copy_sync_mb_per_s(work, fill)}
        console.print("starting Cascade, one worker and two site-sims")
        rig = _start(stack, work)
        figures |= _throughput(rig, volume_gb, fill, changed_percent)
        figures |= _recovery(rig, vms, vm_fill_mb)
    # bytes moved per second against the reference's (the same when the volume is full)
    moved_mb_per_s = fill / figures["full_backup_s"]
    figures["full_backup_vs_copy_sync"] = moved_mb_per_s / figures["copy_sync_mb_per_s"]
    console.print(f"hash rates over {hash_mb} MiB")
    figures["hash_rates"] = hash_rates(hash_mb)
    figures["load_average"] = {"start": load_at_start, "end": os.getloadavg()[0]}
    _report(figures)
    if as_json:
        print(json.dumps({**_rounded(figures), "aims_met": _aims(figures)}))
