"""The worker side of replication policies: a job reads the desired state once (the source
site's resources, or Cascade's keypairs), then brings every target site to it in parallel
(one child workflow per site). At a site each resource is one item: what ``kinds.decide``
says under the policy's conflict rule is carried out, one site call per resource, so a
resource that fails (a flavor id taken by another flavor) fails its item, naming the site and
the resource, and the others go on. Cascade records what it put at each site (its id there
and the digest of the state it expects), and deletes at a site only what it recorded, or
what the kind finds of its own unfinished work for what is gone from the source
(``Kind.leftovers``: an image copy whose source image the source answers 404 for), each an
item of its own.
If the source cannot be read the job waits for it (``waiting``, saying why), up to
``replication_source_wait``, then fails saying so; nothing is deleted anywhere meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cascade.db.models import Site, utcnow
from cascade.db.replication_models import ReplicationJob, ReplicationPolicy
from cascade.engine.context import context
from cascade.engine.workflows import (
    Job,
    StepFailed,
    StepRun,
    at_sites,
    handler,
    step,
    step_function,
)
from cascade.errors import CascadeError, present
from cascade.replication.image_steps import copy_everywhere
from cascade.replication.kinds import (
    KINDS,
    Decision,
    Found,
    Kind,
    Outcome,
    State,
    decide,
    leftover,
)
from cascade.replication.policies import policy_targets
from cascade.replication.records import (
    ItemRow,
    current_records,
    forget_record,
    note_drift,
    note_failures,
    save_record,
    set_item,
    start_items,
)
from cascade.retry import Backoff, until_deadline
from cascade.sites.driver import SiteCallFailed, SiteDriver

SOURCE_BACKOFF = Backoff(first=2.0, cap=60.0)  # between reads of a source that is down


class ReplicationFailed(CascadeError):
    """Items of a job failed at a site; the message names each site and resource."""

    status = 502


def _job(session: Session, operation_id: str) -> ReplicationJob:
    job = session.scalar(select(ReplicationJob).where(ReplicationJob.operation_id == operation_id))
    return present(job, f"the job of operation {operation_id}")


@step_function("replication.desired")
def read_desired(_run: StepRun, operation_id: str) -> str:
    """Read the desired state into the job (its id is returned). While the source site
    cannot be read the job is ``waiting`` and says why; it fails once the source has not
    answered for ``replication_source_wait`` seconds."""
    engine = context()
    with engine.db.session() as session:
        job = _job(session, operation_id)
        job.status = "running"
        policy = present(session.get(ReplicationPolicy, job.policy_id), "policy")
        session.expunge(policy)
        job_id = job.id

    def waiting(error: BaseException, wait: float) -> None:
        _set_job(job_id, "waiting", f"waiting for the source: {error} (next try in {wait:.0f} s)")

    desired = until_deadline(
        SOURCE_BACKOFF,
        engine.settings.replication_source_wait,
        _source_down,
        lambda: KINDS[policy.kind].desired(engine, policy),
        engine.stopping,
        on_retry=waiting,
    )
    with engine.db.session() as session:
        job = present(session.get(ReplicationJob, job_id), "job")
        job.desired, job.status, job.error = desired, "running", None
    return job_id


def _source_down(error: BaseException) -> bool:
    """A source that did not answer, or answered 5xx, may come back; a refusal will not."""
    if not isinstance(error, SiteCallFailed):
        return False
    return error.http_status is None or error.http_status >= 500


def _set_job(job_id: str, status: str, note: str | None) -> None:
    with context().db.session() as session:
        job = present(session.get(ReplicationJob, job_id), "job")
        job.status, job.error = status, note


@step_function("replication.targets")
def targets(_run: StepRun, policy_id: str) -> list[tuple[str, str]]:
    with context().db.session() as session:
        policy = present(session.get(ReplicationPolicy, policy_id), f"policy {policy_id}")
        return [(s.id, s.name) for s in policy_targets(session, policy)]


@step_function("replication.close")
def close(_run: StepRun, operation_id: str, error: str | None) -> None:
    with context().db.session() as session:
        job = _job(session, operation_id)
        job.status = "failed" if error else "succeeded"
        job.error = error
        job.finished_at = utcnow()


@handler("replication.create")
@handler("replication.sync")
def run(job: Job) -> dict[str, Any]:
    try:
        job_id = step(job, "read the desired state", None, "replication.desired", job.operation_id)
        sites = step(job, "find the sites", None, "replication.targets", job.resource_id)
        outcomes = at_sites(job, sites, "replicate", "replication.site", job_id)
        deferred = {site: o["value"] for site, o in outcomes.items() if o["ok"] and o["value"]}
        if deferred:
            outcomes |= copy_everywhere(job, job_id, sites, deferred)
    except StepFailed as failure:
        step(job, "close the job", None, "replication.close", job.operation_id, str(failure))
        raise
    failed = sorted(site for site, outcome in outcomes.items() if not outcome["ok"])
    error = "; ".join(outcomes[site]["error"] for site in failed) or None
    step(job, "close the job", None, "replication.close", job.operation_id, error)
    if error:
        raise StepFailed(f"{len(failed)} of {len(outcomes)} sites failed: {error}")
    return {"job": job_id, "sites": sorted(outcomes)}


@handler("replication.delete")
def remove(job: Job) -> dict[str, Any]:
    """A policy's delete leaves what it put at the sites where it is (its records go)."""
    return {"policy": job.resource_id, "left_at_sites": True}


# -- one site ----------------------------------------------------------------------------------


class SiteRun:
    """One job's work at one site: the decisions, their items and Cascade's records."""

    def __init__(self, job: ReplicationJob, policy: ReplicationPolicy, site: Site) -> None:
        self.job, self.policy, self.site = job, policy, site
        self.kind: Kind = KINDS[policy.kind]
        self.driver: SiteDriver = context().driver(site.id)
        self.desired: dict[str, State] = job.desired or {}
        self.ids: dict[str, str] = {}  # name -> id at the site
        self.deferred: list[str] = []  # names written by steps of their own (images)

    def decisions(self) -> tuple[dict[str, Found], list[Decision]]:
        actual = self.driver.call(f"list {self.kind.name}", self.kind.listing)
        records = current_records(self.policy.id, self.site.id)
        wanted = set(self.policy.names) if self.policy.names is not None else None
        found = decide(self.kind, self.desired, actual, records, self.policy.conflict, wanted)
        return actual, found

    def apply(self, actual: dict[str, Found], decision: Decision) -> tuple[str, str | None]:
        """Carry one decision out; returns (item status, error or note)."""
        name, kind, found = decision.name, self.kind, actual.get(decision.name)
        where = f"site {self.site.name}: {kind.singular} {name}"
        if decision.outcome in ("drift", "conflict"):
            status = "drift" if decision.outcome == "drift" else "error"
            return status, f"{where}: {decision.note}"
        if decision.outcome == "apply" and kind.copied and decision.action != "delete":
            self.deferred.append(name)
            return "pending", None
        if decision.outcome == "adopt" and found is not None:
            self.record(name, found.id, kind.digest(found.state))
        elif decision.outcome == "apply" and decision.action == "delete" and found is not None:
            self.driver.call(f"delete {kind.singular} {name}", lambda c: kind.delete(c, found))
            self.forget(name)
        elif decision.outcome == "apply":
            target = self.driver.call(
                f"{decision.action} {kind.singular} {name}",
                lambda c: kind.write(c, name, self.desired[name], found, self.ids),
            )
            self.record(name, target, kind.digest(self.desired[name]))
        elif decision.outcome == "forget":
            self.forget(name)
        return "done", decision.note

    def run(self) -> list[str]:
        """Bring the site to the desired state; returns the errors of failed items. What
        needs no site call (in sync, reported, adopted) is settled first and written with
        the pending items in one transaction; each site call's item is written as it ends."""
        actual, decisions = self.decisions()
        self.ids = {name: found.id for name, found in actual.items()}
        taken = {d.name for d in decisions}
        removers = self.kind.leftovers(self.policy, self.site.id, self.desired, actual, taken)
        leftovers = [leftover(name) for name in removers]
        acts = [d for d in decisions if d.outcome == "apply"]
        rows: list[ItemRow] = [(d, "pending", None, None) for d in acts + leftovers]
        outcomes = {d.name: self.apply(actual, d) for d in decisions if d.outcome != "apply"}
        rows += [
            (d, *outcomes[d.name], self.ids.get(d.name))
            for d in decisions
            if d.outcome not in ("apply", "forget")
        ]
        start_items(self.job.id, self.site.id, rows)
        made = [d.name for d in acts if d.name not in actual]
        if made:
            self.driver.call(
                f"create {self.kind.name}", lambda c: self.kind.placeholders(c, made, self.ids)
            )
        for decision in acts:
            try:
                outcomes[decision.name] = self.apply(actual, decision)
            except SiteCallFailed as failure:
                outcomes[decision.name] = ("error", failure.message)
            row = (decision, *outcomes[decision.name], self.ids.get(decision.name))
            set_item(self.job.id, self.site.id, row)
        for decision in leftovers:
            outcomes[decision.name] = self.remove(decision, removers[decision.name])
            set_item(self.job.id, self.site.id, (decision, *outcomes[decision.name], None))
        return self.settle(decisions + leftovers, outcomes)

    def remove(self, decision: Decision, remover: Callable[[], None]) -> Outcome:
        """Remove one of the kind's leftovers at the site."""
        try:
            remover()
        except SiteCallFailed as failure:
            where = f"site {self.site.name}: {self.kind.singular} {decision.name}"
            return "error", f"{where}: {failure.message}"
        return "done", decision.note

    def settle(self, decisions: list[Decision], outcomes: dict[str, Outcome]) -> list[str]:
        """Note what failed (the audit backs off from it), what drifted still, and the
        kind's own view of the outcome; returns the errors."""
        failed = {
            d.name: outcomes[d.name][1] or d.name
            for d in decisions
            if d.outcome == "apply" and outcomes[d.name][0] == "error"
        }
        done = {name for name, (status, _note) in outcomes.items() if status == "done"}
        note_failures(self.policy.id, self.site.id, failed, done)
        note_drift(self.policy.id, self.site.name, decisions, set(outcomes) - done)
        self.kind.settled(self.policy, self.site.id, decisions, outcomes)
        return [
            note or name for name, (status, note) in sorted(outcomes.items()) if status == "error"
        ]

    def record(self, name: str, target_id: str, state_digest: str) -> None:
        self.ids[name] = target_id
        save_record(self.policy.id, self.site.id, name, target_id, state_digest)

    def forget(self, name: str) -> None:
        forget_record(self.policy.id, self.site.id, name)


@step_function("replication.site")
def sync_site(_run: StepRun, job_id: str, site_id: str) -> list[str]:
    """Bring the site to the job's desired state; returns the names left to steps of their
    own (image copies)."""
    engine = context()
    with engine.db.session() as session:
        job = present(session.get(ReplicationJob, job_id), f"job {job_id}")
        policy = present(session.get(ReplicationPolicy, job.policy_id), "policy")
        site = present(session.get(Site, site_id), f"site {site_id}")
        session.expunge_all()
    run = SiteRun(job, policy, site)
    errors = run.run()
    if errors:
        raise ReplicationFailed("; ".join(errors))
    return run.deferred
