"""The worker side of keypairs: import or remove the key at every site, one child workflow
per site in parallel; each site's outcome lands in its copy row and in the operation.

Import is idempotent: a key already at the site with the same public key counts as done; a
different key under the same name is reported, never overwritten.
"""

from __future__ import annotations

from typing import Any

from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection
from sqlalchemy import select, update

from cascade.db.models import Keypair, KeypairCopy, Site
from cascade.engine.context import EngineContext, context
from cascade.engine.convergence import checker, repair
from cascade.engine.workflows import (
    Job,
    SiteCall,
    StepRun,
    fan_out,
    handler,
    require_all,
    step,
    step_function,
)
from cascade.errors import present
from cascade.replication.keypairs import KeypairService
from cascade.sites.driver import SiteCallFailed


def _set_copy(keypair_id: str, site_id: str, status: str, error: str | None) -> None:
    with context().db.session() as session:
        session.execute(
            update(KeypairCopy)
            .where(KeypairCopy.keypair_id == keypair_id, KeypairCopy.site_id == site_id)
            .values(status=status, error=error)
        )


def _at_site(c: Connection, name: str) -> Any:
    try:
        return c.compute.get_keypair(name)
    except sdk_exceptions.NotFoundException:
        return None


def _keypair(keypair_id: str) -> Keypair:
    with context().db.session() as session:
        keypair = present(session.get(Keypair, keypair_id), f"keypair {keypair_id}")
        return keypair


@step_function("keypair.import")
def import_keypair(_run: StepRun, keypair_id: str, site_id: str) -> None:
    keypair = _keypair(keypair_id)
    engine = context()
    driver = engine.driver(site_id)

    def ensure(c: Connection) -> None:
        found = _at_site(c, keypair.name)
        if found is None:
            c.compute.create_keypair(name=keypair.name, public_key=keypair.public_key)
        elif found.public_key.strip() != keypair.public_key:
            raise SiteCallFailed(
                driver.access.name,
                f"import keypair {keypair.name}",
                "a different key with this name is already at the site",
            )

    try:
        driver.call(f"import keypair {keypair.name}", ensure)
    except SiteCallFailed as failure:
        _set_copy(keypair_id, site_id, "error", failure.message)
        raise
    _set_copy(keypair_id, site_id, "present", None)


@step_function("keypair.remove")
def remove_keypair(_run: StepRun, keypair_id: str, site_id: str) -> None:
    name = _keypair(keypair_id).name
    _set_copy(keypair_id, site_id, "deleting", None)
    context().driver(site_id).call(
        f"delete keypair {name}", lambda c: c.compute.delete_keypair(name, ignore_missing=True)
    )


@step_function("keypair.copies")
def copies(_run: StepRun, keypair_id: str) -> list[tuple[str, str]]:
    """(site id, site name) for every copy of the keypair."""
    with context().db.session() as session:
        rows = session.execute(
            select(Site.id, Site.name)
            .join(KeypairCopy, KeypairCopy.site_id == Site.id)
            .where(KeypairCopy.keypair_id == keypair_id)
            .order_by(Site.name)
        ).all()
        return [(row[0], row[1]) for row in rows]


def _everywhere(job: Job, verb: str, function_name: str) -> dict[str, Any]:
    sites = step(job, "find the sites", None, "keypair.copies", job.resource_id)
    calls = [
        SiteCall(f"{verb} at {site_name}", site_name, function_name, (job.resource_id, site_id))
        for site_id, site_name in sites
    ]
    outcomes = fan_out(job, calls)
    require_all(outcomes)
    return {"sites": sorted(outcomes)}


@handler("keypair.create")
@handler("keypair.sync")
def create(job: Job) -> dict[str, Any]:
    return _everywhere(job, "import", "keypair.import")


@handler("keypair.delete")
def delete(job: Job) -> dict[str, Any]:
    return _everywhere(job, "delete", "keypair.remove")


@checker
def check_keypairs(engine: EngineContext, site: Site) -> tuple[int, list[dict[str, Any]]]:
    """Keypairs of the site's project that are not at the site (deleted behind Cascade's
    back, or the site is new) are imported again by a ``keypair.sync`` operation."""
    with engine.db.session() as session:
        wanted = session.scalars(
            select(Keypair).where(
                Keypair.project_id == site.project_id, Keypair.task_operation_id.is_(None)
            )
        ).all()
    if not wanted:
        return 0, []
    present = {
        k.name
        for k in engine.driver(site.id).call("list keypairs", lambda c: list(c.compute.keypairs()))
    }
    repairs = []
    for keypair in wanted:
        if keypair.name in present:
            continue
        operation_id = KeypairService(engine.db, engine.services.operations).act(
            keypair.id, "sync", keypair.project_id, None
        )
        drift = f"keypair {keypair.name} is not at the site"
        repairs.append(
            repair("keypair", keypair.id, site.name, drift, f"syncing: operation {operation_id}")
        )
    return len(wanted), repairs
