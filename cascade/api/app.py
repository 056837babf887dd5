"""The FastAPI application: every router, the error model, request metrics, the engine's
metrics collector and the process's fabric controller (started and stopped by the lifespan,
on ``app.state.fabric``)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from cascade import __version__
from cascade.api import (
    cluster,
    errors,
    fabric,
    health,
    keypairs,
    networks,
    operations,
    protection,
    replica,
    replication,
    restores,
    routers,
    servers,
    service_ips,
    sites,
)
from cascade.api.keystone import identity_routers
from cascade.api.routes import RouteTable, StrictQuery, behind_prefix
from cascade.api.telemetry import RequestMetrics
from cascade.engine import metrics
from cascade.errors import Unavailable
from cascade.fabric.controller import start_controller, stop_controller
from cascade.protection import metrics as protection_metrics
from cascade.services import Services
from cascade.ui.router import router as dashboard

log = logging.getLogger("cascade.api")


def create_app(services: Services) -> FastAPI:
    """The whole control plane's API; at a site's identity replica, identity only."""
    if services.settings.identity_master_url is not None:
        return _create_replica_app(services)

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        try:
            controller = await start_controller(services.fabric, services.settings.fabric_url)
        except Unavailable as error:
            log.error("cannot start the fabric controller: %s", error.message)
            raise
        # A second lifespan of the same app (a test client beside a server) must not leave
        # app.state pointing at a controller it closed.
        state = application.state
        previous = getattr(state, "fabric", None)
        state.fabric = controller
        try:
            yield
        finally:
            if state.fabric is controller:
                state.fabric = previous
            await stop_controller(controller)
        metrics.detach(services)
        services.close()

    app = FastAPI(
        title="Cascade",
        version=__version__,
        summary="One control plane above many OpenStack sites.",
        description="Native API under /v1, Keystone-compatible identity under /identity/v3. "
        "Every route but version discovery, POST /identity/v3/auth/tokens and /v1/health "
        "needs a token in the X-Auth-Token header.",
        lifespan=lifespan,
    )
    metrics.install(services)
    metrics.extend(protection_metrics.families)
    _assemble(
        app,
        services,
        *identity_routers(),
        sites.router,
        servers.router,
        keypairs.router,
        networks.router,
        service_ips.router,
        routers.router,
        protection.router,
        protection.checkpoints,
        restores.router,
        replication.router,
        operations.router,
        operations.probes,
        cluster.router,
        replica.feed,
        fabric.router,
        health.router,
        dashboard,
    )
    app.add_middleware(RequestMetrics)  # outermost: counts what StrictQuery refuses too
    return app


GRACEFUL_SHUTDOWN_S = 3


def serve(services: Services) -> None:
    """Serve ``create_app(services)`` on the settings' address until stopped."""
    import uvicorn

    settings = services.settings
    application = create_app(services)
    # What startup built (routes, schemas, the identity snapshot: ~350,000 objects) lives as
    # long as the process: frozen out of the collector's generations, the collections that
    # requests trigger stop walking it (0.1 ms of CPU per accepted operation, measured).
    gc.collect()
    gc.freeze()
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        # Replicas' long polls (up to a minute) must not hold a stopping server up.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


def _create_replica_app(services: Services) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_application: FastAPI) -> AsyncIterator[None]:
        yield
        services.close()

    app = FastAPI(
        title="Cascade identity replica",
        version=__version__,
        summary="A site's read-only copy of Cascade's identity, validating tokens locally.",
        description="Keystone-compatible identity under /identity/v3, following the master "
        f"at {services.settings.identity_master_url}; identity writes are refused.",
        lifespan=lifespan,
    )
    return _assemble(app, services, *identity_routers(), health.router)


def _assemble(app: FastAPI, services: Services, *routers: APIRouter) -> FastAPI:
    """What every Cascade app has: its services, the error model, strict query parameters,
    its routers and an OpenAPI document that says validation errors are 400."""
    app.state.services = services
    errors.install(app)
    app.state.routes = RouteTable(app)
    app.add_middleware(StrictQuery, table=app.state.routes)
    for router in routers:
        app.include_router(behind_prefix(router))
    _document_errors_as_400(app)
    return app


def _document_errors_as_400(app: FastAPI) -> None:
    """Validation errors answer 400 in Keystone's error shape: say so in the OpenAPI document
    instead of FastAPI's default 422."""
    original = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None and "400" not in responses:
                    responses["400"] = {
                        "description": "Bad Request",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ErrorBody"}
                            }
                        },
                    }
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
