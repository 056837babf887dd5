"""The dashboard's one router, which ``cascade.api.app`` includes: login and static files,
then one module per page. HTTP only (``cascade.ui``)."""

from __future__ import annotations

from fastapi import APIRouter

from cascade.ui import (
    auth_pages,
    network_page,
    operations_page,
    protection_page,
    replication_page,
    sites_page,
    tables_page,
)

router = APIRouter()
for module in (
    auth_pages,
    sites_page,
    operations_page,
    tables_page,
    network_page,
    protection_page,
    replication_page,
):
    router.include_router(module.router)
