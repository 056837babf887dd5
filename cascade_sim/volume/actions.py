"""Volume actions (``POST /volumes/{id}/action``): bootable, extend, reserve and unreserve,
attach and detach, reset status; and the attachments Nova makes and removes."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Response
from pydantic import Field

from cascade.api.keystone import Caller
from cascade.identity import AuthContext, authorize
from cascade_sim.common import RegionDep
from cascade_sim.errors import SimError
from cascade_sim.microversions import Microversion
from cascade_sim.region import Region
from cascade_sim.state import new_uuid, now_iso
from cascade_sim.volume.bodies import MAX_SIZE_GB, Strict, parse, single_action
from cascade_sim.volume.disk import GIB, data_file
from cascade_sim.volume.records import Json, load, require_status, save
from cascade_sim.volume.versions import CinderVersion

VolumeStatus = Literal[
    "creating",
    "available",
    "reserved",
    "attaching",
    "detaching",
    "in-use",
    "maintenance",
    "deleting",
    "error",
    "error_deleting",
    "backing-up",
    "restoring-backup",
    "error_restoring",
    "error_extending",
]


class NoArgument(Strict):
    pass


class SetBootable(Strict):
    bootable: bool


class Extend(Strict):
    new_size: int = Field(ge=1, le=MAX_SIZE_GB)


class ResetStatus(Strict):
    status: VolumeStatus | None = None
    attach_status: Literal["attached", "detached"] | None = None
    migration_status: str | None = None


class Attach(Strict):
    mountpoint: str = Field(min_length=1, max_length=255)
    instance_uuid: str | None = None
    host_name: str | None = None
    mode: Literal["rw", "ro"] = "rw"


class Detach(Strict):
    attachment_id: str | None = None


def add_attachment(volume: Json, *, server_id: str | None, host: str | None, device: str) -> None:
    volume["attachments"].append(
        {
            "id": volume["id"],
            "attachment_id": new_uuid(),
            "volume_id": volume["id"],
            "server_id": server_id,
            "host_name": host,
            "device": device,
            "attached_at": now_iso(),
        }
    )
    volume["status"] = "in-use"


def remove_attachments(volume: Json, matches: Callable[[Json], bool]) -> int:
    """Remove the matching attachments; the volume rests available when none are left."""
    kept = [a for a in volume["attachments"] if not matches(a)]
    removed = len(volume["attachments"]) - len(kept)
    volume["attachments"] = kept
    if removed and not kept and volume["status"] == "in-use":
        volume["status"] = "available"
    if removed and not kept and volume["status"] == "backing-up":
        volume["_previous_status"] = "available"  # the status it returns to after the backup
    return removed


@dataclass(frozen=True)
class ActionCall:
    """One ``POST /volumes/{id}/action``: the action's argument and what it acts on."""

    site: Region
    caller: AuthContext
    volume: Json
    argument: Any
    mv: Microversion


def _set_bootable(call: ActionCall) -> None:
    bootable = parse(SetBootable, call.argument, "os-set_bootable").bootable
    call.volume["bootable"] = str(bootable).lower()


def _extend(call: ActionCall) -> None:
    new_size = parse(Extend, call.argument, "os-extend").new_size
    volume = call.volume
    online = {"in-use"} if call.mv >= Microversion(3, 42) else set()
    require_status("volume", volume, {"available", *online}, "extending it")
    if new_size <= volume["size"]:
        raise SimError(
            400,
            f"os-extend.new_size {new_size} must be greater than the volume's size "
            f"({volume['size']} GiB).",
        )
    os.truncate(data_file(call.site, "volume", volume["id"]), new_size * GIB)
    volume["size"] = new_size


def _status_move(action: str, before: str, after: str, doing: str) -> Callable[[ActionCall], None]:
    """An action without argument moving the volume from status ``before`` to ``after``."""

    def move(call: ActionCall) -> None:
        parse(NoArgument, call.argument, action)
        require_status("volume", call.volume, {before}, doing)
        call.volume["status"] = after

    return move


def _os_attach(call: ActionCall) -> None:
    spec = parse(Attach, call.argument, "os-attach")
    if not (spec.instance_uuid or spec.host_name):
        raise SimError(400, "os-attach needs instance_uuid or host_name.")
    require_status("volume", call.volume, {"available", "attaching"}, "attaching it")
    add_attachment(
        call.volume, server_id=spec.instance_uuid, host=spec.host_name, device=spec.mountpoint
    )


def _os_detach(call: ActionCall) -> None:
    wanted = parse(Detach, call.argument, "os-detach").attachment_id
    if not remove_attachments(call.volume, lambda a: wanted in (None, a["attachment_id"])):
        raise SimError(
            404,
            f"os-detach.attachment_id: volume {call.volume['id']} has no attachment "
            f"{wanted or ''}.",
        )


def _reset_status(call: ActionCall) -> None:
    authorize(call.caller, "admin")
    spec = parse(ResetStatus, call.argument, "os-reset_status")
    if spec.status is not None:
        call.volume["status"] = spec.status
        call.volume.pop("_due", None)
    if spec.attach_status == "detached":
        call.volume["attachments"] = []
    if spec.migration_status is not None:
        call.volume["migration_status"] = spec.migration_status


VOLUME_ACTIONS: dict[str, Callable[[ActionCall], None]] = {
    "os-set_bootable": _set_bootable,
    "os-extend": _extend,
    "os-reserve": _status_move("os-reserve", "available", "attaching", "reserving it"),
    "os-unreserve": _status_move("os-unreserve", "attaching", "available", "unreserving it"),
    "os-attach": _os_attach,
    "os-detach": _os_detach,
    "os-reset_status": _reset_status,
}

volume_actions = APIRouter()


@volume_actions.post(
    "/volumes/{volume_id}/action", status_code=202, response_class=Response, summary="Act"
)
def volume_action(
    volume_id: str,
    body: Annotated[Json, Body()],
    response: Response,
    mv: CinderVersion,
    caller: Caller,
    site: RegionDep,
) -> None:
    action, argument = single_action(body)
    if action not in VOLUME_ACTIONS:
        raise SimError(400, f"There is no such action: {action}.")
    with site.state.lock:
        volume = load(site, caller, "volume", volume_id)
        VOLUME_ACTIONS[action](ActionCall(site, caller, volume, argument, mv))
        save(site, "volume", volume)
    if action == "os-set_bootable":
        response.status_code = 200
