"""Volume attachments of a server (``os-volume_attachments``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from cascade.api.keystone import Caller
from cascade_sim import volume
from cascade_sim.common import RegionDep, project_of
from cascade_sim.compute.records import attach_volume, device_of, load, next_device
from cascade_sim.errors import SimError

router = APIRouter(prefix="/compute/v2.1", tags=["compute"])


class VolumeAttachmentIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    volumeId: str = Field(min_length=1, max_length=64)  # noqa: N815 - Nova's field name
    device: str | None = Field(None, max_length=64, pattern=r"^/dev/[a-z]+$")


class VolumeAttachmentBody(BaseModel):
    volumeAttachment: VolumeAttachmentIn  # noqa: N815


def _attachment_view(server: dict[str, Any], volume_id: str, device: str) -> dict[str, Any]:
    return {"id": volume_id, "volumeId": volume_id, "serverId": server["id"], "device": device}


@router.get("/servers/{server_id}/os-volume_attachments", summary="Attached volumes")
def list_attachments(server_id: str, caller: Caller, site: RegionDep) -> dict[str, Any]:
    server = load(site, caller, server_id)
    return {
        "volumeAttachments": [
            _attachment_view(server, a["id"], device_of(server, a["id"]))
            for a in server["os-extended-volumes:volumes_attached"]
        ]
    }


@router.post("/servers/{server_id}/os-volume_attachments", summary="Attach a volume")
def attach(
    server_id: str, body: VolumeAttachmentBody, caller: Caller, site: RegionDep
) -> dict[str, Any]:
    server = load(site, caller, server_id)
    if server["status"] not in ("ACTIVE", "SHUTOFF", "PAUSED"):
        raise SimError(
            409,
            f"Cannot 'attach_volume' instance {server_id} while it is in "
            f"vm_state {server['OS-EXT-STS:vm_state']}",
        )
    device = next_device(server, body.volumeAttachment.device)
    project = None if caller.is_admin else project_of(caller)
    return {
        "volumeAttachment": attach_volume(
            site, server, body.volumeAttachment.volumeId, device, project
        )
    }


@router.delete(
    "/servers/{server_id}/os-volume_attachments/{volume_id}",
    status_code=202,
    summary="Detach a volume",
)
def detach(server_id: str, volume_id: str, caller: Caller, site: RegionDep) -> None:
    server = load(site, caller, server_id)
    attached = server["os-extended-volumes:volumes_attached"]
    if not any(a["id"] == volume_id for a in attached):
        raise SimError(404, f"Volume {volume_id} is not attached to instance {server_id}.")
    volume.detach_volume(site, volume_id, server_id)
    server["os-extended-volumes:volumes_attached"] = [a for a in attached if a["id"] != volume_id]
    server.get("_devices", {}).pop(volume_id, None)
    site.state.put("server", server, server["_project_id"])
