"""Cinder v3 of the emulated region, at ``/volume/v3`` (and ``/volume/v3/{project_id}``):
volumes holding real bytes, snapshots, volume types, group types, groups and group snapshots,
backups kept in a store several sites share, volume manage by reference; and
``/sim/v1/volumes/{id}`` to read and write a volume's bytes.

Owns the state kinds volume, snapshot, group_type, group, group_snapshot and backup, the
``volumes/``, ``snapshots/`` and ``backup-tmp/`` areas of the site's data dir, and the backup
store. May import ``cascade.api.deps``, ``cascade.identity`` and the shared modules of the
emulated region (``common``, ``errors``, ``image``, ``microversions``, ``site``, ``state``);
the rest of the region imports only what this module exports: ``routers`` for the app,
``attach_volume``, ``detach_volume`` and ``create_boot_volume`` for Nova, ``recover`` for the
site's startup.

Modules, each importing only those listed before it: ``disk`` (files: sparse copies, atomic
writes, checksums), ``bodies`` (what request bodies share), ``records`` (what every resource
shares: load, save, due transitions, status checks, listings), ``jobs`` (the per-site thread
pool), ``versions`` (version documents, microversion gate), ``volume_types``,
``backup_store`` (the chunked store), ``fill`` (filling a new volume), ``volumes``,
``actions``, ``snapshots``, ``group_types``, ``groups`` (with group snapshots), ``backups``,
``manage``, ``recovery``, ``nova`` (what Nova calls), ``data`` (``/sim/v1/volumes``) and
``routes`` (the routers and where they are mounted).
"""

from cascade_sim.volume.nova import attach_volume, create_boot_volume, detach_volume
from cascade_sim.volume.recovery import recover
from cascade_sim.volume.routes import routers

__all__ = ["attach_volume", "create_boot_volume", "detach_volume", "recover", "routers"]
