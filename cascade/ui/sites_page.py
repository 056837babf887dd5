"""The Sites page: every site the viewer may see with its region, identity mode and, for an
admin (the replica report is admin-only, as ``GET /identity-replica/v1/replicas`` is), its
identity replica's health: changes behind and seconds of lag, the key set it proved it holds
against the master's, its last poll; and the map of sites and their links to the master.
The panel is re-read by htmx every few seconds. HTTP only (``cascade.ui``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from cascade.identity.changelog import SILENT_AFTER_S, ReplicaLag
from cascade.services import Services
from cascade.sites.registry import SiteRegistry
from cascade.sites.schemas import SiteOut
from cascade.ui import svg
from cascade.ui.session import Viewer, viewer
from cascade.ui.web import HtmlRoute, page, services

router = APIRouter(prefix="/ui", route_class=HtmlRoute, include_in_schema=False)
Who = Annotated[Viewer, Depends(viewer)]

# A replica that follows applies a change within a second or so (long poll); one holding
# changes older than this is behind (its link is cut, or it fails to apply them).
BEHIND_AFTER_S = 10.0


@dataclass(frozen=True)
class SiteRow:
    name: str
    region: str
    identity: str
    health: str  # ok, cut off, behind, keys differ, not following, own identity, admin only
    colour: str  # green, red, amber, grey
    behind: int | None
    lag_s: float | None
    key_set: str | None
    keys_match: bool | None
    last_contact: datetime | None


def _unknown(site: SiteOut, health: str, colour: str) -> SiteRow:
    return SiteRow(
        site.name, site.region_name, site.identity, health, colour, None, None, None, None, None
    )


def _row(site: SiteOut, lag: ReplicaLag | None, master_keys: str | None) -> SiteRow:
    if site.identity != "replica":
        return _unknown(site, "own identity", "grey")
    if master_keys is None:
        return _unknown(site, "admin only", "grey")
    if lag is None:
        return _unknown(site, "not following", "red")
    keys_match = lag.key_set == master_keys
    if lag.silent:
        health, colour = f"cut off (silent > {SILENT_AFTER_S:.0f} s)", "red"
    elif lag.behind and lag.lag_s > BEHIND_AFTER_S:
        health, colour = "behind", "red"
    elif not keys_match:
        health, colour = "keys differ", "amber"
    else:
        health, colour = "ok", "green"
    return SiteRow(
        site.name,
        site.region_name,
        site.identity,
        health,
        colour,
        lag.behind,
        round(lag.lag_s, 1),
        lag.key_set,
        keys_match,
        lag.seen_at,
    )


def site_rows(svc: Services, who: Viewer) -> tuple[list[SiteRow], str | None]:
    """The viewer's sites with their health, and the master's key set (admins only)."""
    sites = SiteRegistry(svc.db, svc.credentials, svc.settings.effective_public_url).list(
        who.projects
    )
    if not who.is_admin:
        return [_row(site, None, None) for site in sites], None
    report = svc.replica_feed.report()
    lags = {lag.name: lag for lag in report.replicas}
    return [_row(site, lags.get(site.name), report.keys) for site in sites], report.keys


def _edge_label(row: SiteRow) -> str:
    if row.lag_s is None:
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
        "silent_after": SILENT_AFTER_S,
        "behind_after": BEHIND_AFTER_S,
    }


@router.get("/sites", response_class=HTMLResponse)
def sites_page(request: Request, who: Who) -> HTMLResponse:
    return page("sites.html", active="sites", **_panel(services(request), who))


@router.get("/sites/panel", response_class=HTMLResponse)
def sites_panel(request: Request, who: Who) -> HTMLResponse:
    return page("_sites_panel.html", **_panel(services(request), who))
