"""Server actions: reboot (soft or hard), stop, start, pause, unpause, suspend and resume
(timed transitions, refused with 409 in the vm_states Nova refuses them in, and while another
task is in progress), quiesce/unquiesce (a frozen server's volumes refuse writes; each
freeze and thaw is kept with its time, shown by ``/sim/v1/quiesces``) and createImage.

createImage of a server booted from an image makes an active private image in the site's
Glance whose bytes are the boot image's: the emulator keeps no root disk of its own for an
image-booted server, so its disk is its image. The image carries Nova's snapshot properties
(``image_type: snapshot``, ``instance_uuid``, ``base_image_ref``) and the request's
metadata; the answer is 202 with the image's URL in ``Location`` and, from microversion 2.45,
``{"image_id": ...}``. A server booted from a volume is refused (409): Nova would snapshot its
volumes and make an image of ``block_device_mapping`` properties, which is not modelled.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, NamedTuple

from fastapi import APIRouter, Body, Response

from cascade.api.keystone import Caller
from cascade.identity import AuthContext
from cascade_sim import image
from cascade_sim.common import RegionDep
from cascade_sim.compute.records import load, schedule, set_status
from cascade_sim.errors import SimError
from cascade_sim.microversions import Microversion, NovaVersion
from cascade_sim.region import Region

router = APIRouter(prefix="/compute/v2.1", tags=["compute"])


class Transition(NamedTuple):
    """An action Nova accepts from ``allowed`` statuses: ``transient`` with ``task`` while it
    runs, then ``final``."""

    allowed: frozenset[str]
    transient: str
    task: str
    final: str


# As nova.compute.api's check_instance_state: soft reboot from ACTIVE only, hard reboot also
# from SHUTOFF, PAUSED, SUSPENDED and ERROR; stop from ACTIVE or ERROR; start from SHUTOFF.
SOFT_REBOOT = Transition(frozenset({"ACTIVE"}), "REBOOT", "rebooting", "ACTIVE")
HARD_REBOOT = Transition(
    frozenset({"ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED", "ERROR"}),
    "HARD_REBOOT",
    "rebooting_hard",
    "ACTIVE",
)
ACTIONS: dict[str, Transition] = {
    "os-stop": Transition(frozenset({"ACTIVE", "ERROR"}), "ACTIVE", "powering-off", "SHUTOFF"),
    "os-start": Transition(frozenset({"SHUTOFF"}), "SHUTOFF", "powering-on", "ACTIVE"),
    "pause": Transition(frozenset({"ACTIVE"}), "ACTIVE", "pausing", "PAUSED"),
    "unpause": Transition(frozenset({"PAUSED"}), "PAUSED", "unpausing", "ACTIVE"),
    "suspend": Transition(frozenset({"ACTIVE"}), "ACTIVE", "suspending", "SUSPENDED"),
    "resume": Transition(frozenset({"SUSPENDED"}), "SUSPENDED", "resuming", "ACTIVE"),
}


@router.post("/servers/{server_id}/action", status_code=202, summary="Server action")
def server_action(
    server_id: str,
    body: Annotated[dict[str, Any], Body()],
    caller: Caller,
    site: RegionDep,
    mv: NovaVersion,
    response: Response,
) -> dict[str, str] | None:
    if len(body) != 1:
        raise SimError(400, "An action body has exactly one key, the action's name.")
    action, argument = next(iter(body.items()))
    server = load(site, caller, server_id)
    if action == "createImage":
        image_id = _create_image(site, caller, server, argument)
        response.headers["Location"] = f"{site.config.base_url}/image/v2/images/{image_id}"
        return {"image_id": image_id} if mv >= Microversion(2, 45) else None
    if action == "reboot":
        _lifecycle(site, server, action, _reboot(argument))
    elif action in ACTIONS:
        _lifecycle(site, server, action, ACTIONS[action])
    elif action in ("quiesce", "unquiesce"):
        _freeze(site, server, action == "quiesce")
    else:
        raise SimError(400, f"There is no such action: {action}")
    site.state.put("server", server, server["_project_id"])
    return None


def _image_request(argument: Any) -> tuple[str, dict[str, str]]:
    """createImage's name and metadata, checked."""
    given = argument if isinstance(argument, dict) else {}
    name, metadata = given.get("name"), given.get("metadata") or {}
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 255:
        raise SimError(400, "Invalid input for field/attribute name: 1 to 255 characters.")
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise SimError(400, "Invalid input for field/attribute metadata: strings to strings.")
    return name, metadata


def _create_image(site: Region, caller: AuthContext, server: dict[str, Any], argument: Any) -> str:
    """The image of an image-booted server's disk (see the module's docstring); its id."""
    name, metadata = _image_request(argument)
    if _vm_status(server) not in ("ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED"):
        raise _refused(server, "createImage")
    if server.get("_pending"):
        raise _busy(server, "createImage")
    if not server["image"]:
        raise SimError(
            409,
            f"Instance {server['id']} boots from a volume: the site-sim does not snapshot "
            "volume-backed servers into images.",
        )
    base = str(server["image"]["id"])
    properties = {"image_type": "snapshot", "instance_uuid": server["id"], "base_image_ref": base}
    return image.copied_image(site, caller, base, {**metadata, **properties, "name": name})


def _reboot(argument: Any) -> Transition:
    kind = argument.get("type") if isinstance(argument, dict) else None
    if not isinstance(kind, str) or kind.upper() not in ("SOFT", "HARD"):
        raise SimError(400, "Invalid input for field/attribute type: it must be SOFT or HARD.")
    return SOFT_REBOOT if kind.upper() == "SOFT" else HARD_REBOOT


def _refused(server: dict[str, Any], action: str) -> SimError:
    return SimError(
        409,
        f"Cannot '{action}' instance {server['id']} while it is in "
        f"vm_state {server['OS-EXT-STS:vm_state']}",
    )


def _busy(server: dict[str, Any], action: str) -> SimError:
    return SimError(
        409,
        f"Cannot '{action}' instance {server['id']} while it is in "
        f"task_state {server['OS-EXT-STS:task_state']}",
    )


def _vm_status(server: dict[str, Any]) -> str:
    """The status its vm_state stands for: a rebooting server is still ACTIVE."""
    return "ACTIVE" if server["status"] in ("REBOOT", "HARD_REBOOT") else str(server["status"])


def _lifecycle(site: Region, server: dict[str, Any], action: str, step: Transition) -> None:
    if _vm_status(server) not in step.allowed:
        raise _refused(server, action)
    if server.get("_pending"):
        raise _busy(server, action)
    set_status(server, step.transient, step.task)
    schedule(server, step.final, site.config.build_seconds)


def _freeze(site: Region, server: dict[str, Any], freeze: bool) -> None:
    name = "quiesce" if freeze else "unquiesce"
    if _vm_status(server) != "ACTIVE":
        raise _refused(server, name)
    if server.get("_pending"):
        raise _busy(server, name)
    if server["_frozen"] == freeze:
        raise SimError(
            409,
            f"Instance {server['id']} is already {'quiesced' if freeze else 'running unquiesced'}.",
        )
    faulty = site.faults.quiesce_failures
    if freeze and (server["id"] in faulty or server["name"] in faulty):
        raise SimError(
            409,
            f"Quiescing instance {server['id']} failed: the guest agent did "
            "not answer (injected fault).",
        )
    server["_frozen"] = freeze
    # Each freeze and thaw, in order, for /sim/v1/quiesces (the order a barrier kept).
    server["_quiesces"] = [*server.get("_quiesces", []), {"action": name, "at": time.time()}]
