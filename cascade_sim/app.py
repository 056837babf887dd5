"""The site-sim's FastAPI application: Keystone (the site's identity copy) and every simulated
service on one port, errors in each service's own shape, faults injected in front."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from cascade import __version__
from cascade.api.keystone import keystone_body, serve_keystone
from cascade.api.routes import behind_prefix
from cascade.errors import CascadeError
from cascade_sim import admin, compute, image, network, object_bulk, objects, volume
from cascade_sim.errors import SimError, render, service_of
from cascade_sim.faults import FaultInjection
from cascade_sim.region import Region


def _render(path: str, status: int, message: str, error: CascadeError | None) -> Any:
    service = service_of(path)
    if service in ("identity", "sim", ""):
        return keystone_body(path, status, message, error)
    neutron_type = error.neutron_type if isinstance(error, SimError) else None
    return render(service, status, message, neutron_type)


def create_region_app(site: Region) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        fabric = network.RegionFabric(site)
        await fabric.start()  # the compute hosts' agents, programmed from Neutron's state
        try:
            site.resume_following()
            yield
        finally:
            await fabric.stop()
            site.close()

    app = FastAPI(
        title=f"Cascade site-sim {site.config.name}",
        version=__version__,
        summary="An emulated OpenStack region: Keystone, Nova, Cinder, Neutron, Glance, Swift.",
        lifespan=lifespan,
    )
    volume.recover(site)  # finish or mark work a killed site-sim left mid-flight
    app.state.site = site
    serve_keystone(app, site.identity, follow_master=site.follow, render=_render)
    app.add_middleware(FaultInjection, faults=site.faults)
    for router in (
        *compute.routers(),
        *network.routers(),
        *volume.routers(),
        *image.routers(),
        *objects.routers(),
        *object_bulk.routers(),
        *admin.routers(),
    ):
        app.include_router(behind_prefix(router))
    return app
