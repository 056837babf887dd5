"""The dashboard's one router, which ``cascade.api.app`` includes: login and static files,
then one module per page. HTTP only (``cascade.ui``)."""

from __future__ import annotations

from fastapi import APIRouter

from cascade.ui import auth_pages, operations_page, sites_page, tables_page

router = APIRouter()
for part in (auth_pages.router, sites_page.router, operations_page.router, tables_page.router):
    router.include_router(part)
