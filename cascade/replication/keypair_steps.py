"""The worker side of keypairs: import or remove the key at every site, one child workflow
per site in parallel; each site's outcome lands in its copy row and in the operation.

Keys at a site are told apart by fingerprint (Nova's, which the site reports), never by name
alone. Import is idempotent: a key already at the site with Cascade's fingerprint counts as
done (also when another writer, a keypairs policy's job or audit, imported it between this
step's look and its import: ``keypair_kind.import_key``); a different key under the same
name is a conflict (the site's copy says so, with both fingerprints), never overwritten.
Delete removes a site's key only if its fingerprint is Cascade's; a different key of that
name is left where it is, and the result says so.
"""

from __future__ import annotations

from typing import Any

from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection
from sqlalchemy import select

from cascade.db.models import Keypair, KeypairCopy, Site
from cascade.engine.context import EngineContext, context
from cascade.engine.convergence import checker, repair
from cascade.engine.workflows import (
    Job,
    StepRun,
    at_sites,
    handler,
    require_all,
    step,
    step_function,
)
from cascade.errors import present
from cascade.replication.keypair_kind import KEYPAIRS, import_key
from cascade.replication.keypairs import KeypairService, fingerprint, set_copy
from cascade.replication.policies import keypair_policy
from cascade.sites.driver import SiteCallFailed
from cascade.sites.named import sites_named_by


def _set_copy(keypair_id: str, site_id: str, status: str, error: str | None) -> None:
    with context().db.session() as session:
        set_copy(session, keypair_id, site_id, status, error)


def _at_site(c: Connection, name: str) -> Any:
    try:
        return c.compute.get_keypair(name)
    except sdk_exceptions.NotFoundException:
        return None


def _keypair(keypair_id: str) -> Keypair:
    with context().db.session() as session:
        keypair = present(session.get(Keypair, keypair_id), f"keypair {keypair_id}")
        return keypair


def _conflict(name: str, theirs: str, ours: str) -> str:
    return (
        f"conflict: a different key named {name} is at the site (fingerprint {theirs}, "
        f"Cascade's is {ours}); it is left as it is"
    )


@step_function("keypair.import")
def import_keypair(_run: StepRun, keypair_id: str, site_id: str) -> None:
    keypair = _keypair(keypair_id)
    ours = fingerprint(keypair.public_key)
    driver = context().driver(site_id)
    what = f"import keypair {keypair.name}"

    def ensure(c: Connection) -> str:
        """The fingerprint of the key now under the name at the site."""
        found = _at_site(c, keypair.name)
        if found is None:
            return import_key(c, keypair.name, keypair.public_key)
        return str(found.fingerprint)

    try:
        theirs = driver.call(what, ensure)
    except SiteCallFailed as failure:
        _set_copy(keypair_id, site_id, "error", failure.message)
        raise
    if theirs != ours:
        conflict = _conflict(keypair.name, theirs, ours)
        _set_copy(keypair_id, site_id, "conflict", conflict)
        raise SiteCallFailed(driver.access.name, what, conflict)
    _set_copy(keypair_id, site_id, "present", None)


@step_function("keypair.remove")
def remove_keypair(_run: StepRun, keypair_id: str, site_id: str) -> str:
    """Delete Cascade's key at the site; returns "removed", "absent" or why it was kept."""
    keypair = _keypair(keypair_id)
    ours = fingerprint(keypair.public_key)
    _set_copy(keypair_id, site_id, "deleting", None)
    driver = context().driver(site_id)

    def remove(c: Connection) -> str:
        found = _at_site(c, keypair.name)
        if found is None:
            return "absent"
        if found.fingerprint != ours:
            return _conflict(keypair.name, found.fingerprint, ours)
        c.compute.delete_keypair(keypair.name, ignore_missing=True)
        return "removed"

    return driver.call(f"delete keypair {keypair.name}", remove)


@step_function("keypair.copies")
def copies(_run: StepRun, keypair_id: str) -> list[tuple[str, str]]:
    """(site id, site name) for every copy of the keypair."""
    with context().db.session() as session:
        return sites_named_by(session, KeypairCopy.site_id, KeypairCopy.keypair_id == keypair_id)


def _everywhere(job: Job, verb: str, function_name: str) -> dict[str, Any]:
    sites = step(job, "find the sites", None, "keypair.copies", job.resource_id)
    outcomes = at_sites(job, sites, verb, function_name, job.resource_id)
    require_all(outcomes)
    kept = {
        site: outcome["value"]
        for site, outcome in outcomes.items()
        if outcome["value"] not in (None, "removed", "absent")
    }
    return {"sites": sorted(outcomes), **({"kept": kept} if kept else {})}


@handler("keypair.create")
@handler("keypair.sync")
def create(job: Job) -> dict[str, Any]:
    return _everywhere(job, "import", "keypair.import")


@handler("keypair.delete")
def delete(job: Job) -> dict[str, Any]:
    return _everywhere(job, "delete", "keypair.remove")


@checker
def check_keypairs(engine: EngineContext, site: Site) -> tuple[int, list[dict[str, Any]]]:
    """Compare the site's keys with the project's by fingerprint: a keypair missing at the
    site (deleted behind Cascade's back, or the site is new) is imported again by a
    ``keypair.sync`` operation; a different key under its name is a conflict, marked on the
    site's copy and reported when first seen (never overwritten); a copy in conflict whose
    site key is Cascade's again is present. A project with a keypairs policy is left to the
    policy's audit (``audit``)."""
    with engine.db.session() as session:
        if keypair_policy(session, site.project_id) is not None:
            return 0, []
        wanted = session.scalars(
            select(Keypair).where(
                Keypair.project_id == site.project_id, Keypair.task_operation_id.is_(None)
            )
        ).all()
        copies = {
            copy.keypair_id: copy.status
            for copy in session.scalars(select(KeypairCopy).where(KeypairCopy.site_id == site.id))
        }
    if not wanted:
        return 0, []
    listed = engine.driver(site.id).call("list keypairs", KEYPAIRS.listing)
    at_site = {name: found.state["fingerprint"] for name, found in listed.items()}
    repairs = []
    for keypair in wanted:
        theirs, ours = at_site.get(keypair.name), fingerprint(keypair.public_key)
        if theirs is None:
            operation = KeypairService(engine.db, engine.services.operations).act(
                keypair.id, "sync", keypair.project_id, None
            )
            drift = f"keypair {keypair.name} is not at the site"
            action = f"syncing: operation {operation.id}"
        elif theirs != ours and copies.get(keypair.id) != "conflict":
            drift = _conflict(keypair.name, theirs, ours)
            action = "marked conflict"
            _set_copy(keypair.id, site.id, "conflict", drift)
        elif theirs == ours and copies.get(keypair.id) == "conflict":
            drift = f"keypair {keypair.name} at the site is Cascade's again"
            action = "marked present"
            _set_copy(keypair.id, site.id, "present", None)
        else:
            continue
        repairs.append(repair("keypair", keypair.id, site.name, drift, action))
    return len(wanted), repairs
