"""The read-only pages: Cluster (workers and heartbeats, queue depth, the last convergence
passes and what they repaired), Fabric (hosts' goal vs applied revision, converged vs
lagging), Networks (segments per site, service IPs with holder and last switchover),
Protection (plans with RPO, checkpoints, restores with progress and RTO) and Replication
(policies with drift per site, jobs with per-site progress). Each table comes from the
service its ``/v1`` route uses, under the same role rule (Cluster and Fabric: admin, as
their routes are); a network, a plan and a job lead to their own pages (``network_page``,
``protection_page``, ``replication_page``). HTTP only (``cascade.ui``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from cascade.engine.cluster import cluster_status
from cascade.engine.convergence import recent_passes
from cascade.identity.policy import authorize
from cascade.network.networks import NetworkService
from cascade.network.service_ips import ServiceIPService
from cascade.protection.plans import PlanService
from cascade.protection.restores import RestoreService
from cascade.replication.policies import PolicyService
from cascade.sites.driver import SiteDriver
from cascade.sites.registry import SiteRegistry
from cascade.ui.session import Viewer, viewer
from cascade.ui.web import HtmlRoute, page, services

router = APIRouter(prefix="/ui", route_class=HtmlRoute, include_in_schema=False)
Who = Annotated[Viewer, Depends(viewer)]

FABRIC_HOSTS = 1000  # hosts listed (by name); the counts cover all of them
CONVERGENCE_PASSES = 10

Column = tuple[str, Callable[[Any], Any]]  # a header, and how to read the cell of one row


@dataclass(frozen=True)
class Link:
    """A cell leading to a detail page."""

    text: str
    href: str


@dataclass(frozen=True)
class Table:
    id: str
    title: str
    columns: list[str]
    rows: list[list[str | Link]]
    note: str = ""


def _text(value: Any) -> str | Link:
    if isinstance(value, Link):
        return value
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _link(path: str, text: Callable[[Any], Any]) -> Callable[[Any], Link]:
    """A cell showing ``text`` of a row, leading to ``/ui/PATH/{the row's id}``."""
    return lambda row: Link(str(text(row)), f"/ui/{path}/{row.id}")


def _short(name: str) -> Callable[[Any], str]:
    """An id, cut to what tells it apart on a page."""
    return lambda row: str(getattr(row, name))[:13]


def _count(name: str) -> Callable[[Any], int]:
    return lambda row: len(getattr(row, name))


def _per_site(name: str, field: Callable[[Any], Any]) -> Callable[[Any], str]:
    def cell(row: Any) -> str:
        values: dict[str, Any] = getattr(row, name)
        return ", ".join(f"{site}: {_text(field(value))}" for site, value in values.items()) or "—"

    return cell


def _drift(drift: Any) -> str:
    counts = {"missing": drift.missing, "extra": drift.extra, "changed": drift.changed}
    return ", ".join(f"{kind} {len(names)}" for kind, names in counts.items() if names) or "in sync"


def _progress(job: Any) -> str:
    return ", ".join(f"{k} {v}" for k, v in job.progress.items()) or "—"


def _table(
    id_: str, title: str, columns: list[Column], items: Iterable[Any], note: str = ""
) -> Table:
    rows = [[_text(read(item)) for _header, read in columns] for item in items]
    return Table(id_, title, [header for header, _read in columns], rows, note)


def _render(who: Viewer, active: str, tables: list[Table]) -> HTMLResponse:
    return page("tables.html", active=active, title=active.title(), tables=tables, viewer=who)


A = attrgetter
WORKERS: list[Column] = [
    ("Worker", A("executor_id")), ("Host", A("host")), ("PID", A("pid")), ("State", A("state")),
    ("Live", A("live")), ("Heartbeat age (s)", A("heartbeat_age_s")),
    ("Started", A("started_at")), ("Recovered by", A("recovered_by")),
]  # fmt: skip
PASSES: list[Column] = [
    ("Pass", _short("id")), ("Worker", A("executor_id")), ("Status", A("status")),
    ("Checked", A("checked")), ("Repaired", _count("repairs")), ("Started", A("started_at")),
    ("Finished", A("finished_at")), ("Error", A("error")),
]  # fmt: skip
HOSTS: list[Column] = [
    ("Host", itemgetter("name")), ("VTEP", itemgetter("tunnel_ip")),
    ("Goal revision", itemgetter("revision")), ("Applied", itemgetter("applied_revision")),
    ("Networks behind", itemgetter("networks_behind")), ("Converged", itemgetter("converged")),
    ("Acked", itemgetter("acked_at")),
]  # fmt: skip
NETWORKS: list[Column] = [
    ("Network", _link("networks", A("name"))), ("CIDR", A("cidr")), ("VNI", A("vni")),
    ("Status", A("status")), ("Ports", A("ports")),
    ("Per site", _per_site("sites", A("status"))), ("Error", A("error")),
]  # fmt: skip
SERVICE_IPS: list[Column] = [
    ("Address", A("address")), ("Network", _short("network_id")), ("Holder", A("holder")),
    ("Holder's site", A("holder_site")), ("Status", A("status")),
    ("Last switchover", A("moved_at")), ("Took (s)", A("switchover_s")),
]  # fmt: skip
PLANS: list[Column] = [
    ("Plan", _link("protection/plans", A("name"))), ("From", A("source_site")),
    ("To", A("target_site")), ("Strategy", A("strategy")), ("Members", _count("members")),
    ("RPO (s)", A("rpo_s")), ("Status", A("status")), ("Error", A("error")),
]  # fmt: skip
CHECKPOINTS: list[Column] = [
    ("Checkpoint", _short("id")), ("Plan", _short("plan_id")), ("Status", A("status")),
    ("Consistency point", A("consistency_point")), ("Backed up", A("backed_up_at")),
    ("Freeze (s)", A("freeze_window_s")), ("Error", A("error")),
]  # fmt: skip
RESTORES: list[Column] = [
    ("Restore", _short("id")), ("Checkpoint", _short("checkpoint")), ("To", A("target_site")),
    ("Status", A("status")), ("Volumes", _count("volumes")), ("Servers", _count("servers")),
    ("RTO (s)", A("rto_s")), ("Error", A("error")),
]  # fmt: skip
POLICIES: list[Column] = [
    ("Policy", _short("id")), ("Kind", A("kind")), ("From", A("source_site")),
    ("Sites", lambda p: ", ".join(p.sites)), ("Conflict rule", A("conflict")),
    ("Status", A("status")), ("Drift per site", _per_site("drift", _drift)),
    ("Audited", A("audited_at")),
]  # fmt: skip
JOBS: list[Column] = [
    ("Job", _link("replication/jobs", _short("id"))), ("Policy", _short("policy_id")),
    ("Reason", A("reason")), ("Status", A("status")), ("Progress", _progress),
    ("Started", A("created_at")), ("Finished", A("finished_at")), ("Error", A("error")),
]  # fmt: skip


@router.get("/cluster", response_class=HTMLResponse)
def cluster_page(request: Request, who: Who) -> HTMLResponse:
    authorize(who.ctx, "admin")
    svc = services(request)
    status = cluster_status(svc)
    in_flight = f"In flight: {status.in_flight.queued} queued, {status.in_flight.running} running."
    queues: list[Column] = [("Queue", itemgetter(0)), ("Waiting", itemgetter(1))]
    passes = recent_passes(svc.db, CONVERGENCE_PASSES)
    return _render(
        who,
        "cluster",
        [
            _table("workers", "Workers", WORKERS, status.workers),
            _table("queues", "Queues", queues, status.queue_depth.items(), in_flight),
            _table("convergence", "Convergence passes", PASSES, passes),
        ],
    )


@router.get("/fabric", response_class=HTMLResponse)
def fabric_page(request: Request, who: Who) -> HTMLResponse:
    authorize(who.ctx, "admin")
    tracking = services(request).fabric.tracking
    converged, lagging = tracking.counts()
    note = f"{converged} hosts converged, {lagging} lagging (the first {FABRIC_HOSTS} by name)."
    hosts = tracking.hosts(False, FABRIC_HOSTS)
    return _render(who, "fabric", [_table("hosts", "Hosts", HOSTS, hosts, note)])


@router.get("/networks", response_class=HTMLResponse)
def networks_page(request: Request, who: Who) -> HTMLResponse:
    svc = services(request)
    networks = NetworkService(svc.db, svc.operations).list(who.projects)
    service_ips = ServiceIPService(svc.db, svc.operations).list(who.projects)
    return _render(
        who,
        "networks",
        [
            _table("networks", "Networks across sites", NETWORKS, networks),
            _table("service-ips", "Service IPs", SERVICE_IPS, service_ips),
        ],
    )


@router.get("/protection", response_class=HTMLResponse)
def protection_page(request: Request, who: Who) -> HTMLResponse:
    svc = services(request)
    plans = PlanService(svc.db, svc.operations)
    registry = SiteRegistry(svc.db, svc.credentials, svc.settings.effective_public_url)
    restores = RestoreService(
        svc.db, svc.operations, lambda site: SiteDriver(registry.access(site))
    )
    return _render(
        who,
        "protection",
        [
            _table("plans", "Protection plans", PLANS, plans.plans(who.projects)),
            _table("checkpoints", "Checkpoints", CHECKPOINTS, plans.checkpoints(who.projects)),
            _table("restores", "Restores", RESTORES, restores.restores(who.projects)),
        ],
    )


@router.get("/replication", response_class=HTMLResponse)
def replication_page(request: Request, who: Who) -> HTMLResponse:
    svc = services(request)
    service = PolicyService(svc.db, svc.operations)
    return _render(
        who,
        "replication",
        [
            _table("policies", "Replication policies", POLICIES, service.listing(who.projects)),
            _table("jobs", "Jobs", JOBS, service.jobs(who.projects, None)),
        ],
    )
