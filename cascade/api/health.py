"""``/v1/health`` (no token: for load balancers) and ``/metrics`` (Prometheus; needs a token)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from cascade import __version__
from cascade.api.deps import Caller, IdentityDep
from cascade.api.errors import error_responses
from cascade.errors import Unavailable

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str
    version: str
    database: str
    database_latency_ms: float


@router.get(
    "/v1/health",
    response_model=Health,
    summary="Liveness and database reachability",
    responses=error_responses(503),
)
def health(svc: IdentityDep) -> Health:
    started = time.perf_counter()
    try:
        with svc.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        raise Unavailable(f"database unreachable: {type(error).__name__}") from error
    latency = (time.perf_counter() - started) * 1000
    return Health(
        status="ok",
        version=__version__,
        database=svc.db.dialect,
        database_latency_ms=round(latency, 3),
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
            "description": "Metrics in the Prometheus text format",
        },
        **error_responses(401),
    },
)
def metrics(_caller: Caller) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
