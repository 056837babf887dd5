"""Server actions: reboot (soft or hard), stop, start, pause, unpause, suspend and resume
(timed transitions, refused with 409 in the vm_states Nova refuses them in, and while another
task is in progress) and quiesce/unquiesce (a frozen server's volumes refuse writes; each
freeze and thaw is kept with its time, shown by ``/sim/v1/quiesces``)."""

from __future__ import annotations

import time
from typing import Annotated, Any, NamedTuple

from fastapi import APIRouter, Body

from cascade.api.keystone import Caller
from cascade_sim.common import RegionDep
from cascade_sim.compute.records import load, schedule, set_status
from cascade_sim.errors import SimError
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
    server_id: str, body: Annotated[dict[str, Any], Body()], caller: Caller, site: RegionDep
) -> None:
    if len(body) != 1:
        raise SimError(400, "An action body has exactly one key, the action's name.")
    action, argument = next(iter(body.items()))
    server = load(site, caller, server_id)
    if action == "reboot":
        _lifecycle(site, server, action, _reboot(argument))
    elif action in ACTIONS:
        _lifecycle(site, server, action, ACTIONS[action])
    elif action in ("quiesce", "unquiesce"):
        _freeze(site, server, action == "quiesce")
    else:
        raise SimError(400, f"There is no such action: {action}")
    site.state.put("server", server, server["_project_id"])


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
