"""``cascade bench replicate``: tenant resource replication (issue 17), an image copy against a
plain download of the same bytes in the same run, a resumed copy's resent bytes, and the
replication audit's pass over many sites, with and without drift. This module has the
command, the audit's half and the report.

- **Image**: ``replicate_image`` (a copy against a plain download, a resumed copy).
- **Audit**: an embedded Cascade, one worker and ``--audit-sites`` target site-sims plus a
  source; ``--resources`` flavors created at every site through the sim's Nova API, a
  flavors policy (``cascade_wins``) whose first job finds them in sync, and Cascade's records
  of them written as a job that had created them would have. ``audit_pass_s``: one audit pass
  (``audit.audit_replication`` for every site in service, in this process, as the
  convergence pass calls it) with no drift, after an untimed first one in which the site
  drivers log in. Then ``--drift-percent`` of each target's flavors
  changed behind Cascade's back (half deleted, half given an extra spec); ``audit_repair_s``:
  the audit pass that finds them and starts the repair job, until that job has finished at
  the worker. The job repairs every target, so the pass may find less than was injected at
  the sites it reaches after the job did. A last pass checks that no drift is left.

With ``--json`` the last line of output is one JSON object. May import cascade.cli (clients,
embedded, netlab, bench.replicate_image), cascade.services, cascade.engine,
cascade.replication, cascade.sites and cascade.db.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from openstack.connection import Connection
from rich.table import Table
from sqlalchemy import select

from cascade.cli.bench.replicate_image import PASSWORD, SITE_ENV, console, image_figures, start_site
from cascade.cli.clients import SessionClient, login, password_auth_plugin
from cascade.cli.embedded import EmbeddedCascade, EmbeddedSite, EmbeddedWorker
from cascade.cli.netlab import finished
from cascade.config import Settings
from cascade.db.models import Site
from cascade.db.replication_models import ReplicaRecord, ReplicationPolicy
from cascade.engine.context import EngineContext, install
from cascade.errors import CascadeError
from cascade.replication.audit import audit_replication, one_pass
from cascade.replication.flavor_kind import FLAVORS
from cascade.replication.policies import PolicyService
from cascade.services import Services
from cascade.sites.driver import SiteDriver
from cascade.sites.registry import IN_SERVICE

DEADLINE = 1800.0  # seconds a job may take before the bench gives up
AIM_COPY_VS_RAW, AIM_RESENT, AIM_AUDIT_S = 0.5, 0.05, 10.0
RESENT = (
    "resume_resent_fraction = (bytes sent by the interrupted call + bytes sent by the resume "
    "- image size) / image size"
)
TIMING = (
    "audit_pass_s: audit_replication over every site in service, in this process, no drift, "
    "after a first pass (audit_first_pass_s) in which the site drivers logged in; "
    "audit_repair_s: the pass that finds the drift and starts the repair job, until the job "
    "has finished at the worker"
)
Json = dict[str, Any]


# -- the audit ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditRig:
    api: SessionClient  # Cascade's /v1 as its admin
    engine: EngineContext  # this process's, on the embedded Cascade's database
    sites: list[EmbeddedSite]  # the source first


def _start_cascade(stack: ExitStack, work: Path) -> tuple[SessionClient, EngineContext]:
    data_dir = work / "cascade"
    url = f"sqlite:///{data_dir / 'cascade.db'}"
    env = {"CASCADE_DATABASE_URL": url, "CASCADE_LOG_LEVEL": "warning", **SITE_ENV}
    cascade = stack.enter_context(EmbeddedCascade(data_dir, PASSWORD, env=env))
    services = Services(Settings(data_dir=data_dir, database_url=url, password_hash_rounds=4))
    stack.callback(services.close)
    # no scheduled pass while the bench times its own
    worker_env = {**env, "CASCADE_CONVERGENCE_INTERVAL": "3600"}
    worker = EmbeddedWorker(data_dir, "bench-w1", services.db, env=worker_env)
    stack.callback(worker.stop)
    worker.start(timeout=60)
    api = SessionClient(
        login(password_auth_plugin(f"{cascade.url}/identity/v3", PASSWORD)), cascade.url
    )
    engine = EngineContext(services)
    install(engine)
    return api, engine


def _register(api: SessionClient, site: EmbeddedSite) -> None:
    credentials = {"username": "admin", "password": PASSWORD, "project_name": "admin"}
    body = {"name": site.site_name, "region_name": site.region, "identity_url": site.auth_url}
    api.call("POST", "/v1/sites", {**body, "credentials": credentials}, 201)


def _flavor_name(number: int) -> str:
    return f"bench-{number:05d}"


def _create_flavor(c: Connection, name: str) -> None:
    c.compute.create_flavor(id=name, name=name, vcpus=1, ram=256, disk=1)


def _delete_flavor(c: Connection, name: str) -> None:
    c.compute.delete_flavor(name)


def _change_flavor(c: Connection, name: str) -> None:
    c.compute.create_flavor_extra_specs(name, {"bench:drift": "1"})


def _seed(site: EmbeddedSite, resources: int) -> None:
    """``resources`` flavors at the site, the same at every site, through its Nova API."""
    driver = SiteDriver(site.access(), 120.0)
    for number in range(resources):
        name = _flavor_name(number)
        driver.call(f"create flavor {name}", partial(_create_flavor, name=name))


def _start_audit(stack: ExitStack, work: Path, sites: int, resources: int) -> AuditRig:
    api, engine = _start_cascade(stack, work)
    names = ["audit-source", *(f"audit-{n:02d}" for n in range(1, sites + 1))]
    started = [start_site(stack, work, name) for name in names]
    for site in started:
        _register(api, site)
    console.print(f"creating {resources} flavors at each of {len(started)} sites")
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda s: _seed(s, resources), started))
    return AuditRig(api, engine, started)


def _policy(rig: AuditRig) -> str:
    """The flavors policy, its first job finished, and the records a job that had created
    the flavors would have left."""
    body = {"kind": "flavors", "source_site": rig.sites[0].site_name, "conflict": "cascade_wins"}
    accepted = rig.api.call("POST", "/v1/replication/policies", body, 202)
    finished(rig.api, accepted, DEADLINE)
    policy_id = str(accepted["policy"]["id"])
    policy = rig.engine.row(ReplicationPolicy, policy_id, "the bench's policy")
    desired = FLAVORS.desired(rig.engine, policy)
    with rig.engine.db.session() as session:
        targets = [
            s.id for s in session.scalars(select(Site).where(Site.id != policy.source_site_id))
        ]
        session.add_all(
            ReplicaRecord(
                policy_id=policy_id,
                site_id=site_id,
                name=name,
                target_id=str(state["id"]),
                digest=FLAVORS.digest(state),
            )
            for site_id in targets
            for name, state in desired.items()
        )
    return policy_id


def _audit_pass(engine: EngineContext) -> tuple[float, int, list[Json]]:
    """One audit pass over every site in service: (seconds, resources checked, drift)."""
    with engine.db.session() as session:
        sites = list(session.scalars(select(Site).where(IN_SERVICE).order_by(Site.name)))
        session.expunge_all()
    started = time.perf_counter()
    checked, repairs = 0, []
    with one_pass():  # as in the engine's pass: each policy's source is read once
        for site in sites:
            site_checked, site_repairs = audit_replication(engine, site)
            checked += site_checked
            repairs += site_repairs
    return time.perf_counter() - started, checked, repairs


def _drift(site: EmbeddedSite, names: list[str]) -> None:
    """Half the names deleted at the site, the other half given an extra spec."""
    driver = SiteDriver(site.access(), 120.0)
    for index, name in enumerate(names):
        change = _delete_flavor if index % 2 == 0 else _change_flavor
        driver.call(f"drift flavor {name}", partial(change, name=name))


def _repair_job(rig: AuditRig, policy_id: str) -> str:
    service = PolicyService(rig.engine.db, rig.engine.services.operations)
    jobs = [j for j in service.jobs(None, policy_id) if j.reason == "audit"]
    if not jobs:
        raise CascadeError("the audit started no repair job")
    return str(jobs[0].operation)


def _audit_figures(
    work: Path, stack: ExitStack, sites: int, resources: int, percent: float
) -> Json:
    rig = _start_audit(stack, work, sites, resources)
    console.print("the flavors policy and its first job")
    policy_id = _policy(rig)
    console.print("audit passes, no drift: the first (site logins in it), then the timed one")
    first_s, _checked, _found = _audit_pass(rig.engine)
    pass_s, checked, found = _audit_pass(rig.engine)
    per_site = max(1, round(resources * percent / 100))
    console.print(f"drift: {per_site} flavors changed at each of {sites} targets")
    for site in rig.sites[1:]:
        _drift(site, random.sample([_flavor_name(n) for n in range(resources)], per_site))
    started = time.perf_counter()
    drift_s, _checked, drifted = _audit_pass(rig.engine)
    finished(rig.api, {"operation": {"id": _repair_job(rig, policy_id)}}, DEADLINE)
    repair_s = time.perf_counter() - started
    _after_s, _checked, left = _audit_pass(rig.engine)
    return {
        "audit_sites": sites,
        "resources": resources,
        "audit_checked": checked,
        "audit_first_pass_s": first_s,
        "audit_pass_s": pass_s,
        "audit_drift_in_clean_pass": len(found),
        "drift_injected": per_site * sites,
        "drift_found": len(drifted),
        "audit_drift_pass_s": drift_s,
        "audit_repair_s": repair_s,
        "drift_left_after_repair": len(left),
    }


# -- report ---------------------------------------------------------------------------------------


def _aims(figures: Json) -> dict[str, bool]:
    return {
        f"image_copy_vs_raw_download >= {AIM_COPY_VS_RAW}": figures["image_copy_vs_raw_download"]
        >= AIM_COPY_VS_RAW,
        f"resume_resent_fraction <= {AIM_RESENT}": figures["resume_resent_fraction"] <= AIM_RESENT,
        f"audit_pass_s < {AIM_AUDIT_S:g}": figures["audit_pass_s"] < AIM_AUDIT_S,
        "drift found and repaired": figures["drift_found"] > 0
        and figures["drift_left_after_repair"] == 0,
    }


def _report(figures: Json) -> None:
    table = Table("figure", "value", title="cascade bench replicate")
    for key, value in figures.items():
        table.add_row(key, f"{value:,.3f}" if isinstance(value, float) else str(value))
    console.print(table)
    console.print(RESENT)
    console.print(TIMING)
    for aim, met in _aims(figures).items():
        console.print(f"aim {aim}: {'met' if met else '[red]not met[/red]'}")


def replicate(
    image_mb: Annotated[int, typer.Option(min=1, max=4096, help="Image size (MiB)")] = 256,
    audit_sites: Annotated[
        int, typer.Option(min=1, max=32, help="Target sites audited (plus a source)")
    ] = 10,
    resources: Annotated[
        int, typer.Option(min=2, max=100_000, help="Flavors at every site")
    ] = 1000,
    drift_percent: Annotated[
        float, typer.Option(min=0.01, max=100, help="Flavors changed at each target (%)")
    ] = 1.0,
    chunk_mb: Annotated[
        int, typer.Option(min=1, max=64, help="Chunk of the image copy (MiB)")
    ] = 16,
    as_json: Annotated[bool, typer.Option("--json", help="Print figures as JSON last")] = False,
) -> None:
    """Image copy against a plain download, resumed copy, and the replication audit's pass
    over many sites with and without drift."""
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cascade-bench-")))
        with ExitStack() as image_stack:  # the image's sites stop before the audit's start
            figures = image_figures(work, image_stack, image_mb, chunk_mb)
        figures |= _audit_figures(work, stack, audit_sites, resources, drift_percent)
    _report(figures)
    if as_json:
        rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}
        print(json.dumps({**rounded, "resend_definition": RESENT, "aims_met": _aims(figures)}))
