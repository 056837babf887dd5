"""``ServicesDep``: the whole control plane's services as a dependency, for Cascade's own
routers only. Apart from ``deps`` (the token check and the identity services, which an
emulated region and an identity replica serve too) so that those processes do not import the
engine, DBOS and the sites' drivers at every start (0.3-0.4 s of CPU each on a slow machine).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cascade.services import Services


async def services(request: Request) -> Services:
    """The whole control plane's services (Cascade's own app only)."""
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]
