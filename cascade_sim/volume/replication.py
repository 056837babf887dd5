"""Storage replication of the emulated array, and the files manage-by-reference can adopt.

A volume of a replicated type (extra specs ``replication_enabled='<is> True'`` and
``cascade_sim:replica_dir``, see ``volume_types``) shows ``replication_status: enabled`` and
its replica's reference in ``os-volume-replication:driver_data`` (Cinder's
``replication_driver_data``, a driver's JSON text): ``{"replica": NAME}``, NAME being the
file ``<replica dir>/<volume id>``.

Replication is asynchronous and snapshot-shipped, as arrays replicate asynchronously (NetApp
SnapMirror, Pure's periodic replication, Ceph's snapshot-based RBD mirroring): a replica is
never a torn copy of a volume being written, it is the volume as of its latest snapshot.
Each snapshot of the volume, single or a group snapshot's member, is shipped: the replica
becomes that snapshot's bytes (written under a ``.part`` name and renamed, so the replica is
always one whole snapshot), and the driver data names the snapshot and when it was shipped.
A group snapshot therefore ships every member at its one instant. Writes after the latest
snapshot are not at the target. A shipping that fails (the target directory gone) marks the
volume's replication ``error`` and leaves the snapshot taken.

The replica directory stands for the target array: a site whose volume types name it (the
target site's admin configures the same type) can adopt its files by reference
(``manageable_files``): manage hard-links the replica into the site's volumes (so it must be
on the same filesystem as the site's data dir), records the volume, then unlinks the replica
name, as for the site's own unmanaged files.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from cascade_sim.region import Region
from cascade_sim.state import now_iso
from cascade_sim.volume.disk import GIB, data_file, sparse_copy, unmanaged_dir
from cascade_sim.volume.records import Json
from cascade_sim.volume.volume_types import find_volume_type, replica_dir, volume_types

log = logging.getLogger(__name__)
DRIVER_DATA = "os-volume-replication:driver_data"


def replication_fields(volume_type: Json, volume_id: str) -> Json:
    """The replication fields of a new volume of ``volume_type`` with id ``volume_id``."""
    if replica_dir(volume_type) is None:
        return {"replication_status": "disabled", DRIVER_DATA: None}
    return {"replication_status": "enabled", DRIVER_DATA: json.dumps({"replica": volume_id})}


def ship(site: Region, volume: Json, snapshot: Json) -> None:
    """Mirror the snapshot just taken of ``volume`` to its replica, if its type replicates
    (the caller holds the state lock and saves ``volume``)."""
    if volume.get("replication_status") not in ("enabled", "error"):
        return
    target = replica_dir(find_volume_type(site, volume["volume_type"], "volume_type"))
    if target is None:
        return
    try:
        sparse_copy(
            data_file(site, "snapshot", snapshot["id"]),
            target / volume["id"],
            volume["size"] * GIB,
        )
    except OSError as error:
        log.warning("replicating volume %s to %s failed: %s", volume["id"], target, error)
        volume["replication_status"] = "error"
        return
    volume["replication_status"] = "enabled"
    volume[DRIVER_DATA] = json.dumps(
        {"replica": volume["id"], "snapshot": snapshot["id"], "shipped_at": now_iso()}
    )


def manageable_files(site: Region) -> dict[str, Path]:
    """The files manage-by-reference can adopt, by name: the site's unmanaged volumes, then
    the replicas in the replica directories its volume types name."""
    directories = [unmanaged_dir(site)]
    directories += [d for d in map(replica_dir, volume_types(site)) if d and d.is_dir()]
    found: dict[str, Path] = {}
    for directory in directories:
        for path in sorted(directory.iterdir()):
            if path.is_file() and not path.name.endswith(".part"):
                found.setdefault(path.name, path)
    return found
