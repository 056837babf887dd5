"""The continuous audit of replication policies: a convergence checker, so it runs once per
period for the whole cluster. For each site, every policy that targets it is compared with
its desired state (the site's resources listed in pages where its API pages, compared in
memory by ``kinds.decide``), the drift classified (missing, extra, changed) and written into
the policy's view; under ``site_wins`` the site's changed version is adopted as Cascade's
record at once; whatever a job would carry out (a repair under ``cascade_wins``, or what a
site new to the policy is missing under any rule) starts one (``replication.sync``, reason
audit), unless a job of the policy runs already. The source site itself is not audited; one
that cannot be read is noted on the policy and nothing is changed for it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cascade.db.models import Site
from cascade.db.replication_models import ReplicationPolicy
from cascade.engine.context import EngineContext
from cascade.engine.convergence import checker, repair
from cascade.errors import Conflict
from cascade.replication.kinds import KINDS, Decision, decide
from cascade.replication.policies import PolicyService, policy_targets
from cascade.replication.records import current_records, note_drift, save_record
from cascade.sites.driver import SiteCallFailed


def _policies(engine: EngineContext, site: Site) -> list[ReplicationPolicy]:
    with engine.db.session() as session:
        policies = session.scalars(
            select(ReplicationPolicy)
            .where(
                ReplicationPolicy.project_id == site.project_id,
                ReplicationPolicy.status != "DELETING",
            )
            .order_by(ReplicationPolicy.created_at)
        ).all()
        mine = [p for p in policies if site.id in {s.id for s in policy_targets(session, p)}]
        session.expunge_all()
        return mine


def audit_policy(
    engine: EngineContext, policy: ReplicationPolicy, site: Site
) -> tuple[int, list[Decision]]:
    """Compare one site with one policy; returns (resources wanted, drift found)."""
    kind = KINDS[policy.kind]
    try:
        desired = kind.desired(engine, policy)
    except SiteCallFailed as failure:
        note_drift(policy.id, site.name, [], set(), f"source unreachable: {failure.message}")
        return 0, []
    actual = engine.driver(site.id).call(f"list {kind.name}", kind.listing)
    wanted = set(policy.names) if policy.names is not None else None
    records = current_records(policy.id, site.id)
    decisions = decide(kind, desired, actual, records, policy.conflict, wanted)
    for decision in decisions:
        if decision.outcome == "adopt":
            found = actual[decision.name]
            save_record(policy.id, site.id, decision.name, found.id, kind.digest(found.state))
    drifted = [d for d in decisions if d.drift is not None and d.outcome != "adopt"]
    note_drift(policy.id, site.name, decisions, {d.name for d in drifted})
    return len(desired), drifted


def _start_job(engine: EngineContext, policy: ReplicationPolicy, reason: str) -> str:
    service = PolicyService(engine.db, engine.services.operations)
    try:
        return f"repairing: operation {service.act(policy.id, 'sync', None, reason, None)}"
    except Conflict:
        return "a job of the policy runs: the next pass looks again"


@checker
def audit_replication(engine: EngineContext, site: Site) -> tuple[int, list[dict[str, Any]]]:
    checked, repairs = 0, []
    for policy in _policies(engine, site):
        wanted, drifted = audit_policy(engine, policy, site)
        checked += wanted
        if not drifted:
            continue
        action = "reported"
        if any(d.outcome == "apply" for d in drifted):
            joined = not current_records(policy.id, site.id)  # nothing of the policy there yet
            action = _start_job(engine, policy, "site_joined" if joined else "audit")
        repairs += [
            repair(
                f"replication.{policy.kind}", policy.id, site.name, f"{d.drift}: {d.name}", action
            )
            for d in drifted
        ]
    return checked, repairs
