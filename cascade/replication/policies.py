"""Replication policies, API side: the policy's state machine, accepting its create, runs and
delete (each an operation; a create or a run also opens a job), and showing policies with
their last job and drift, and jobs with their items: a list, or one row, in a fixed number
of statements whatever the number of rows (each ``*_of`` reads one thing for all the rows at
once). Every check that needs only Cascade's rows (a known kind and conflict rule, sites of
the project) is made here, before anything is queued; what needs the sites is the job's
(``policy_steps``)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from cascade.db import Database
from cascade.db.models import Operation, Site
from cascade.db.replication_models import (
    ReplicaFailure,
    ReplicationItem,
    ReplicationJob,
    ReplicationPolicy,
)
from cascade.engine.operations import Operations
from cascade.engine.states import StateMachine, declare, transition
from cascade.errors import BadRequest, Conflict, NotFound
from cascade.identity.policy import seen, seen_by
from cascade.replication.schemas import (
    FailureOut,
    ItemOut,
    JobOut,
    PolicyIn,
    PolicyOut,
    SiteDrift,
)
from cascade.sites.named import site_names
from cascade.sites.registry import IN_SERVICE

KIND_NAMES = ("images", "flavors", "security_groups", "keypairs")
RULES = ("cascade_wins", "site_wins", "report")

POLICIES = declare(
    StateMachine(
        "replication",
        ReplicationPolicy,
        {
            "create": transition((), "SYNCING", "ACTIVE"),
            "sync": transition(("ACTIVE", "ERROR"), "SYNCING", "ACTIVE"),
            "delete": transition(("ACTIVE", "ERROR"), "DELETING", None),
        },
    )
)


def project_sites(session: Session, project_id: str) -> list[Site]:
    query = select(Site).where(Site.project_id == project_id, IN_SERVICE).order_by(Site.name)
    return list(session.scalars(query))


def policy_targets(session: Session, policy: ReplicationPolicy) -> list[Site]:
    """The policy's target sites now: those it names, or every site of its project (a site
    registered later too), never its source."""
    return targets_of(session, [policy])[policy.id]


def targets_of(session: Session, policies: list[ReplicationPolicy]) -> dict[str, list[Site]]:
    """Per policy id, ``policy_targets``: one read of the policies' projects' sites."""
    projects = {p.project_id for p in policies}
    query = select(Site).where(Site.project_id.in_(projects), IN_SERVICE).order_by(Site.name)
    sites = list(session.scalars(query))
    return {
        p.id: [
            s
            for s in sites
            if s.project_id == p.project_id
            and s.id != p.source_site_id
            and (p.sites is None or s.id in p.sites)
        ]
        for p in policies
    }


def keypair_policy(session: Session, project_id: str) -> ReplicationPolicy | None:
    """The project's keypairs policy, which governs where its keypairs go, if it has one."""
    return session.scalar(
        select(ReplicationPolicy).where(
            ReplicationPolicy.project_id == project_id, ReplicationPolicy.kind == "keypairs"
        )
    )


def _site(sites: list[Site], name: str, project_id: str) -> Site:
    site = next((s for s in sites if name in (s.id, s.name)), None)
    if site is None:
        raise BadRequest(f"Unknown site {name!r}: it is not a site of project {project_id}.")
    return site


def _check(session: Session, spec: PolicyIn, project_id: str) -> tuple[str | None, list[str]]:
    """The source site id and target site ids of a valid ``spec``, or 400 naming what is
    wrong."""
    if spec.kind not in KIND_NAMES:
        raise BadRequest(f"Unknown kind {spec.kind!r}: one of {', '.join(KIND_NAMES)}.")
    if spec.conflict not in RULES:
        raise BadRequest(f"Unknown conflict rule {spec.conflict!r}: one of {', '.join(RULES)}.")
    sites = project_sites(session, project_id)
    if spec.kind == "keypairs" and spec.source_site is not None:
        raise BadRequest("A keypairs policy has no source site: Cascade's keypairs are its state.")
    if spec.kind != "keypairs" and spec.source_site is None:
        raise BadRequest(f"A {spec.kind} policy needs a source_site.")
    source = _site(sites, spec.source_site, project_id).id if spec.source_site else None
    targets = [_site(sites, name, project_id).id for name in spec.sites or []]
    if source is not None and source in targets:
        raise BadRequest(f"The source site {spec.source_site} cannot be a target too.")
    taken = session.scalar(
        select(ReplicationPolicy.id).where(
            ReplicationPolicy.project_id == project_id, ReplicationPolicy.kind == spec.kind
        )
    )
    if taken is not None:
        raise Conflict(f"Project {project_id} has a {spec.kind} policy already: {taken}.")
    return source, targets


def _find(session: Session, policy_id: str, projects: set[str] | None) -> ReplicationPolicy:
    return seen(session, ReplicationPolicy, policy_id, projects, "replication policy")


def progress_of(session: Session, job_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per job id, its items by status, in the order each status's first item comes (by
    site, then name): one grouped read for all the jobs."""
    item = ReplicationItem
    place = func.row_number().over(partition_by=item.job_id, order_by=(item.site_id, item.name))
    ranked = (
        select(item.job_id, item.status, place.label("place"))
        .where(item.job_id.in_(job_ids))
        .subquery()
    )
    query = (
        select(ranked.c.job_id, ranked.c.status, func.count())
        .group_by(ranked.c.job_id, ranked.c.status)
        .order_by(ranked.c.job_id, func.min(ranked.c.place))
    )
    found: dict[str, dict[str, int]] = {job_id: {} for job_id in job_ids}
    for job_id, status, count in session.execute(query):
        found[job_id][status] = count
    return found


def items_of(session: Session, job_ids: list[str]) -> dict[str, list[ItemOut]]:
    """Per job id, its items by site id, then name: one read for all the jobs."""
    names = site_names(session)
    found: dict[str, list[ItemOut]] = {job_id: [] for job_id in job_ids}
    query = (
        select(ReplicationItem)
        .where(ReplicationItem.job_id.in_(job_ids))
        .order_by(ReplicationItem.site_id, ReplicationItem.name)
    )
    for item in session.scalars(query):
        found[item.job_id].append(_item_out(item, names[item.site_id]))
    return found


def jobs_out(session: Session, jobs: list[ReplicationJob], with_items: bool) -> list[JobOut]:
    """The jobs shown, in a fixed number of statements however many there are."""
    job_ids = [job.id for job in jobs]
    progress = progress_of(session, job_ids)
    items = items_of(session, job_ids) if with_items else {}
    return [
        JobOut(
            id=job.id,
            policy_id=job.policy_id,
            reason=job.reason,
            status=job.status,
            operation=job.operation_id,
            progress=progress[job.id],
            items=items[job.id] if with_items else None,
            error=job.error,
            created_at=job.created_at,
            finished_at=job.finished_at,
        )
        for job in jobs
    ]


def _item_out(item: ReplicationItem, site: str) -> ItemOut:
    percent = None
    if item.bytes_total:
        percent = round(100.0 * (item.bytes_done or 0) / item.bytes_total, 1)
    return ItemOut(
        site=site,
        name=item.name,
        action=item.action,
        status=item.status,
        bytes_done=item.bytes_done,
        bytes_total=item.bytes_total,
        bytes_sent=item.bytes_sent,
        percent=percent,
        target_id=item.target_id,
        error=item.error,
    )


def failing_of(session: Session, policy_ids: list[str]) -> dict[str, dict[str, list[FailureOut]]]:
    """Per policy id, what its sites refused, per site name: one read for all the policies."""
    found: dict[str, dict[str, list[FailureOut]]] = {policy_id: {} for policy_id in policy_ids}
    for row, site in session.execute(
        select(ReplicaFailure, Site.name)
        .join(Site, Site.id == ReplicaFailure.site_id)
        .where(ReplicaFailure.policy_id.in_(policy_ids))
        .order_by(Site.name, ReplicaFailure.name)
    ):
        found[row.policy_id].setdefault(site, []).append(
            FailureOut(
                name=row.name,
                error=row.error,
                failures=row.failures,
                retry_in_passes=row.wait_passes,
                failed_at=row.failed_at,
            )
        )
    return found


def last_jobs(session: Session, policy_ids: list[str]) -> dict[str, ReplicationJob]:
    """Per policy id that has a job, its newest job: one read for all the policies."""
    newest = func.row_number().over(
        partition_by=ReplicationJob.policy_id, order_by=ReplicationJob.created_at.desc()
    )
    ranked = (
        select(ReplicationJob, newest.label("newest"))
        .where(ReplicationJob.policy_id.in_(policy_ids))
        .subquery()
    )
    job = aliased(ReplicationJob, ranked)
    return {j.policy_id: j for j in session.scalars(select(job).where(ranked.c.newest == 1))}


def policies_out(session: Session, policies: list[ReplicationPolicy]) -> list[PolicyOut]:
    """The policies shown, in a fixed number of statements however many there are."""
    policy_ids = [p.id for p in policies]
    names = site_names(session)
    last = last_jobs(session, policy_ids)
    jobs = dict(zip(last, jobs_out(session, list(last.values()), with_items=False), strict=True))
    targets = targets_of(session, policies)
    failing = failing_of(session, policy_ids)
    return [
        PolicyOut(
            id=p.id,
            project_id=p.project_id,
            kind=p.kind,
            source_site=names[p.source_site_id] if p.source_site_id else None,
            names=p.names,
            sites=[s.name for s in targets[p.id]],
            conflict=p.conflict,
            bandwidth_limit=p.bandwidth_limit,
            status=p.status,
            task=p.task_operation_id,
            error=p.error,
            last_job=jobs.get(p.id),
            drift={site: SiteDrift.model_validate(found) for site, found in p.drift.items()},
            failing=failing[p.id],
            audited_at=p.audited_at,
            created_at=p.created_at,
        )
        for p in policies
    ]


class PolicyService:
    def __init__(self, db: Database, operations: Operations) -> None:
        self._db = db
        self._operations = operations

    def create(self, spec: PolicyIn, project_id: str, key: str | None) -> Operation:
        """Accept a policy and its first job; returns its operation (its ``resource_id`` is
        the policy's)."""

        def write(session: Session, operation_id: str) -> tuple[str, str]:
            source, targets = _check(session, spec, project_id)
            policy = ReplicationPolicy(
                project_id=project_id,
                kind=spec.kind,
                source_site_id=source,
                names=spec.names,
                sites=targets or None,
                conflict=spec.conflict,
                bandwidth_limit=spec.bandwidth_limit,
                status="SYNCING",
                task_operation_id=operation_id,
                drift={},
            )
            session.add(policy)
            session.flush()
            _open_job(session, policy, operation_id, "created")
            return POLICIES.kind, policy.id

        return self._operations.accept(
            kind="replication.create",
            project_id=project_id,
            request=spec.model_dump(),
            write=write,
            idempotency_key=key,
        )

    def act(
        self, policy_id: str, action: str, projects: set[str] | None, reason: str, key: str | None
    ) -> Operation:
        """Accept a run (``sync``, opening a job for ``reason``) or the delete of a policy;
        returns its operation."""
        with self._db.session() as session:
            project_id = _find(session, policy_id, projects).project_id

        def write(session: Session, operation_id: str) -> tuple[str, str]:
            POLICIES.begin(session, policy_id, action, operation_id)
            if action == "sync":
                _open_job(session, _find(session, policy_id, None), operation_id, reason)
            return POLICIES.kind, policy_id

        return self._operations.accept(
            kind=f"replication.{action}",
            project_id=project_id,
            request={"policy": policy_id, "reason": reason},
            write=write,
            idempotency_key=key,
        )

    def show(self, policy_id: str, projects: set[str] | None) -> PolicyOut:
        with self._db.session() as session:
            return policies_out(session, [_find(session, policy_id, projects)])[0]

    def listing(self, projects: set[str] | None) -> list[PolicyOut]:
        query = select(ReplicationPolicy).order_by(ReplicationPolicy.created_at)
        query = seen_by(query, ReplicationPolicy.project_id, projects)
        with self._db.session() as session:
            return policies_out(session, list(session.scalars(query)))

    def jobs(self, projects: set[str] | None, policy_id: str | None) -> list[JobOut]:
        query = select(ReplicationJob).order_by(ReplicationJob.created_at.desc()).limit(100)
        query = seen_by(query, ReplicationJob.project_id, projects)
        if policy_id is not None:
            query = query.where(ReplicationJob.policy_id == policy_id)
        with self._db.session() as session:
            return jobs_out(session, list(session.scalars(query)), with_items=False)

    def job(self, job_id: str, projects: set[str] | None) -> JobOut:
        with self._db.session() as session:
            job = seen(session, ReplicationJob, job_id, projects, "replication job")
            return jobs_out(session, [job], with_items=True)[0]

    def job_of(self, operation_id: str) -> str:
        with self._db.session() as session:
            job_id = session.scalar(
                select(ReplicationJob.id).where(ReplicationJob.operation_id == operation_id)
            )
            if job_id is None:
                raise NotFound(f"Could not find the job of operation {operation_id}.")
            return job_id


def _open_job(session: Session, policy: ReplicationPolicy, operation_id: str, reason: str) -> None:
    session.add(
        ReplicationJob(
            policy_id=policy.id,
            project_id=policy.project_id,
            operation_id=operation_id,
            reason=reason,
            status="queued",
        )
    )
