"""Crash recovery: ``recover`` (run once per Region, at the latest on its first request) finishes
or fails what a killed site-sim left mid-flight."""

from __future__ import annotations

import shutil
import threading
import weakref

from cascade_sim.common import RegionDep
from cascade_sim.region import Region
from cascade_sim.volume.backup_store import end_backup, remove_backup, store_dir
from cascade_sim.volume.disk import AREAS, area_dir
from cascade_sim.volume.fill import run_volume_job
from cascade_sim.volume.jobs import submit
from cascade_sim.volume.records import update
from cascade_sim.volume.replication import manageable_files


def _finish_adoptions(site: Region) -> None:
    """A manage interrupted between linking the file and unlinking its unmanaged (or replica)
    name keeps whichever name the site recorded."""
    linked = {
        path.stat().st_ino: path
        for path in manageable_files(site).values()
        if path.stat().st_nlink > 1
    }
    for adopted in area_dir(site, "volume").glob("*.img") if linked else ():
        source = linked.get(adopted.stat().st_ino)
        if source is not None:
            recorded = site.state.get("volume", adopted.stem) is not None
            (source if recorded else adopted).unlink()


_RECOVERED: weakref.WeakSet[Region] = weakref.WeakSet()
_RECOVERED_LOCK = threading.Lock()


def recover(site: Region) -> None:
    """Resume or fail what a killed site-sim left mid-flight (once per Region): copies into
    volumes being created or restored are redone from the start; backups that were running
    are marked error, their partial chunks removed; interrupted backup deletions finish."""
    with _RECOVERED_LOCK:
        if site in _RECOVERED:
            return
        _RECOVERED.add(site)
    for area in AREAS:
        for leftover in area_dir(site, area).glob("*.part"):
            leftover.unlink(missing_ok=True)
    for staged in area_dir(site, "staging").glob("*.img"):
        staged.unlink(missing_ok=True)
    _finish_adoptions(site)
    for backup in site.state.list("backup"):
        if backup["status"] == "creating":
            shutil.rmtree(store_dir(site, backup["id"]), ignore_errors=True)
            reason = "The site-sim stopped while this backup ran; its partial data was removed."
            end_backup(site, backup["id"], status="error", fail_reason=reason)
        elif backup["status"] == "deleting":
            remove_backup(site, backup["id"])
    restoring = set()
    for volume in site.state.list("volume"):
        if "_job" in volume:
            submit(site, run_volume_job, volume["id"])
            if volume["_job"]["kind"] == "restore":
                restoring.add(volume["_job"]["source"])
    for backup in site.state.list("backup"):
        if backup["status"] == "restoring" and backup["id"] not in restoring:
            update(site, "backup", backup["id"], status="available")


def recovered(site: RegionDep) -> None:
    """A dependency: recovery done before the request is served."""
    recover(site)
