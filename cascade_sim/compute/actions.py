"""Server actions: reboot, stop and start (timed transitions, refused with 409 in the states
Nova refuses them in) and quiesce/unquiesce (a frozen server's volumes refuse writes)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from cascade.api.keystone import Caller
from cascade_sim.common import RegionDep
from cascade_sim.compute.records import load, schedule, set_status
from cascade_sim.errors import SimError
from cascade_sim.region import Region

router = APIRouter(prefix="/compute/v2.1", tags=["compute"])


# action -> (statuses it is allowed from, transient status, task_state, final status)
ACTIONS: dict[str, tuple[frozenset[str], str, str, str]] = {
    "reboot": (frozenset({"ACTIVE", "SHUTOFF"}), "REBOOT", "rebooting", "ACTIVE"),
    "os-stop": (frozenset({"ACTIVE"}), "ACTIVE", "powering-off", "SHUTOFF"),
    "os-start": (frozenset({"SHUTOFF"}), "SHUTOFF", "powering-on", "ACTIVE"),
}


@router.post("/servers/{server_id}/action", status_code=202, summary="Server action")
def server_action(
    server_id: str, body: Annotated[dict[str, Any], Body()], caller: Caller, site: RegionDep
) -> None:
    if len(body) != 1:
        raise SimError(400, "An action body has exactly one key, the action's name.")
    action = next(iter(body))
    server = load(site, caller, server_id)
    if action in ACTIONS:
        _lifecycle(site, server, action)
    elif action in ("quiesce", "unquiesce"):
        _freeze(site, server, action == "quiesce")
    else:
        raise SimError(400, f"There is no such action: {action}")
    site.state.put("server", server, server["_project_id"])


def _lifecycle(site: Region, server: dict[str, Any], action: str) -> None:
    allowed, transient, task, final = ACTIONS[action]
    if server["status"] not in allowed or server.get("_pending"):
        raise SimError(
            409,
            f"Cannot '{action}' instance {server['id']} while it is in "
            f"vm_state {server['OS-EXT-STS:vm_state']}",
        )
    set_status(server, transient, task)
    schedule(server, final, site.config.build_seconds)


def _freeze(site: Region, server: dict[str, Any], freeze: bool) -> None:
    name = "quiesce" if freeze else "unquiesce"
    if server["status"] != "ACTIVE" or server.get("_pending"):
        raise SimError(
            409,
            f"Cannot '{name}' instance {server['id']} while it is in "
            f"vm_state {server['OS-EXT-STS:vm_state']}",
        )
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
