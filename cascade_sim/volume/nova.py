"""What Nova calls: attach a volume to a server, detach it, and create the bootable volume a
server boots from. Each call runs ``recover`` first, as every Cinder request does."""

from __future__ import annotations

from typing import Any

from cascade_sim.errors import SimError
from cascade_sim.region import Region
from cascade_sim.volume.actions import add_attachment, remove_attachments
from cascade_sim.volume.fill import fill_from_image
from cascade_sim.volume.records import Json, require_status, save, settled
from cascade_sim.volume.recovery import recover
from cascade_sim.volume.volumes import image_source, new_volume, volume_size


def _owned_volume(site: Region, volume_id: str, project_id: str | None) -> Json:
    volume = site.state.get("volume", volume_id)
    if volume is None or project_id not in (None, volume["_project_id"]):
        raise SimError(404, f"Volume {volume_id} could not be found.")
    return settled(site, "volume", volume)


def attach_volume(
    site: Region, volume_id: str, *, server_id: str, host: str, device: str, project_id: str | None
) -> dict[str, Any]:
    """Attach an available volume (of ``project_id``; None: any) to a server; returns Nova's
    volumeAttachment."""
    recover(site)
    with site.state.lock:
        volume = _owned_volume(site, volume_id, project_id)
        require_status("volume", volume, {"available"}, "attaching it")
        add_attachment(volume, server_id=server_id, host=host, device=device)
        save(site, "volume", volume)
    return {"id": volume_id, "volumeId": volume_id, "serverId": server_id, "device": device}


def detach_volume(site: Region, volume_id: str, server_id: str) -> None:
    """Remove the volume's attachments to the server; nothing to do if there are none."""
    recover(site)
    with site.state.lock:
        volume = site.state.get("volume", volume_id)
        if volume is not None and remove_attachments(volume, lambda a: a["server_id"] == server_id):
            save(site, "volume", volume)


def create_boot_volume(
    site: Region, project_id: str, image_id: str, size_gb: int, name: str
) -> str:
    """A bootable volume holding the image's bytes, available as soon as they are copied."""
    recover(site)
    size = volume_size(size_gb, image_source(site, image_id))
    volume = new_volume(site, project_id, None, size, name=name)
    volume.update(fill_from_image(site, volume, image_id), status="available")
    save(site, "volume", volume)
    return str(volume["id"])
