"""The Sites page: every site the viewer may see with its region, identity mode, the control
plane's last contact with its APIs (the convergence passes) and, for an admin (the replica
report is admin-only, as ``GET /identity-replica/v1/replicas`` is), its identity replica's
health: changes behind and seconds of lag, the key set it proved it holds against the
master's, its last poll; and the map of sites and their links to the master. The panel is
re-read by htmx every few seconds; the health rule is ``site_health``'s. HTTP only
(``cascade.ui``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from cascade.engine.convergence import recent_passes
from cascade.identity.changelog import ReplicaLag
from cascade.services import Services
from cascade.sites.registry import SiteRegistry
from cascade.ui import svg
from cascade.ui.session import Viewer, viewer
from cascade.ui.site_health import (
    BEHIND_AFTER_S,
    CONTACT_PASSES,
    NO_CONTACT,
    QUIET_AFTER_S,
    SiteRow,
    contacts,
    site_row,
)
from cascade.ui.web import HtmlRoute, page, services

router = APIRouter(prefix="/ui", route_class=HtmlRoute, include_in_schema=False)
Who = Annotated[Viewer, Depends(viewer)]


def site_rows(svc: Services, who: Viewer) -> tuple[list[SiteRow], str | None]:
    """The viewer's sites with their health, and the master's key set (admins only)."""
    sites = SiteRegistry(svc.db, svc.credentials, svc.settings.effective_public_url).list(
        who.projects
    )
    reached = contacts(recent_passes(svc.db, CONTACT_PASSES), sites)
    lags: dict[str, ReplicaLag] = {}
    master_keys = None
    if who.is_admin:
        report = svc.replica_feed.report()
        lags, master_keys = {lag.name: lag for lag in report.replicas}, report.keys
    rows = [
        site_row(site, reached.get(site.id, NO_CONTACT), lags.get(site.name), master_keys)
        for site in sites
    ]
    return rows, master_keys


def _edge_label(row: SiteRow) -> str:
    if row.lag_s is None or row.reason is not None:
        return row.health
    return f"{row.lag_s:.0f} s, {row.behind} behind"


def _panel(svc: Services, who: Viewer) -> dict[str, Any]:
    rows, master_keys = site_rows(svc, who)
    nodes = svg.site_map([(row.name, row.colour, _edge_label(row)) for row in rows])
    return {
        "rows": rows,
        "master_keys": master_keys,
        "nodes": nodes,
        "map_size": svg.MAP_SIZE,
        "viewer": who,
        "quiet_after": QUIET_AFTER_S,
        "behind_after": BEHIND_AFTER_S,
        "pass_every": svc.settings.convergence_interval,
    }


@router.get("/sites", response_class=HTMLResponse)
def sites_page(request: Request, who: Who) -> HTMLResponse:
    return page("sites.html", active="sites", **_panel(services(request), who))


@router.get("/sites/panel", response_class=HTMLResponse)
def sites_panel(request: Request, who: Who) -> HTMLResponse:
    return page("_sites_panel.html", **_panel(services(request), who))
