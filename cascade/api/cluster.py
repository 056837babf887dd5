"""``/v1/cluster`` (admins: workers, heartbeats, queue depth, operations in flight, the last
convergence pass) and ``/v1/convergence`` (admin: the last passes and what each repaired).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cascade.api.deps import Caller
from cascade.api.errors import error_responses
from cascade.api.services_dep import ServicesDep
from cascade.engine.cluster import cluster_status
from cascade.engine.convergence import recent_passes
from cascade.engine.schemas import ClusterOut, ConvergenceList
from cascade.identity.policy import authorize

router = APIRouter(prefix="/v1", tags=["operations"])


@router.get(
    "/cluster",
    response_model=ClusterOut,
    summary="Show the cluster: workers and their heartbeats, queue depth, operations in flight, "
    "the last convergence pass",
    responses=error_responses(400, 401, 403),
)
def show_cluster(caller: Caller, svc: ServicesDep) -> ClusterOut:
    authorize(caller, "admin")
    return cluster_status(svc)


@router.get(
    "/convergence",
    response_model=ConvergenceList,
    summary="List the last convergence passes, newest first, with what each repaired "
    "(admin: repairs name every project's resources)",
    responses=error_responses(400, 401, 403),
)
def list_convergence(
    caller: Caller,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Passes to show")] = 10,
) -> ConvergenceList:
    authorize(caller, "admin")
    return ConvergenceList(passes=recent_passes(svc.db, limit))
