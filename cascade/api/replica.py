"""``/identity-replica/v1``: served by a process that holds a site's copy of the identity data
(today the site-sim), so the control plane can fill it. Needs an admin token valid there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel

from cascade.api.deps import Caller, ServicesDep
from cascade.api.errors import error_responses
from cascade.errors import BadRequest
from cascade.identity.policy import authorize
from cascade.identity.replica import TABLES, install_snapshot

router = APIRouter(prefix="/identity-replica/v1", tags=["identity replica"])
AfterInstall = Callable[[], None]


class Installed(BaseModel):
    revision: int
    rows: int


@router.put(
    "/snapshot",
    response_model=Installed,
    summary="Install an identity snapshot",
    responses=error_responses(400, 401, 403),
)
def install(
    snapshot: dict[str, Any] = Body(...), *, caller: Caller, svc: ServicesDep, request: Request
) -> Installed:
    authorize(caller, "admin")
    if not isinstance(snapshot.get("tables"), dict) or not snapshot.get("keys"):
        raise BadRequest("A snapshot has tables and keys.")
    try:
        install_snapshot(svc.db, svc.keys, snapshot)
    except (KeyError, TypeError, ValueError) as error:
        raise BadRequest(f"Invalid snapshot: {type(error).__name__}: {error}") from error
    svc.tokens.reload_keys()
    after: AfterInstall | None = getattr(request.app.state, "after_identity_install", None)
    if after is not None:
        after()
    rows = sum(len(snapshot["tables"].get(name, [])) for name in TABLES)
    return Installed(revision=int(snapshot.get("revision", 0)), rows=rows)
