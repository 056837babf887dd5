"""The continuous audit of replication policies: a convergence checker, so it runs once per
period for the whole cluster. For each site, every policy that targets it is compared with
its desired state (the site's resources listed in pages where its API pages, compared in
memory by ``kinds.decide``), the drift classified (missing, extra, changed) and written into
the policy's view; under ``site_wins`` the site's changed version is adopted as Cascade's
record at once; whatever a job would carry out (a repair under ``cascade_wins``, or what a
site new to the policy is missing under any rule) starts one (``replication.sync``, reason
audit), unless a job of the policy runs already, or every resource it would write there was
refused by the site and is waiting out its backoff (``records.backing_off``). The source
site itself is not audited; one that cannot be read is noted on the policy and nothing is
changed for it.

A pass reads each policy's desired state once, at the first site it audits for it, not once
per target site: the convergence pass runs the checker site by site inside one workflow, so
the pass is known by its workflow id; a caller outside the engine (a bench) audits its sites
within ``one_pass()``. A source read later in the pass than it changed is seen by the next
pass, as any drift after the pass looked. May import ``cascade.engine``, ``cascade.sites``,
``cascade.db``, ``cascade.errors`` and ``dbos`` (the pass's workflow id).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from dbos import DBOS
from sqlalchemy import select

from cascade.db.models import Site, new_id
from cascade.db.replication_models import ReplicationPolicy
from cascade.engine.context import EngineContext
from cascade.engine.convergence import checker, repair
from cascade.errors import Conflict
from cascade.replication.kinds import KINDS, Decision, Outcome, State, decide, leftover
from cascade.replication.policies import PolicyService, policy_targets
from cascade.replication.records import backing_off, current_records, note_drift, save_record
from cascade.sites.driver import SiteCallFailed

KEPT_PASSES = 2  # a pass slower than the period overlaps the next one


@dataclass(frozen=True)
class Desired:
    """A policy's desired state as one pass read it, or why its source could not be read."""

    state: dict[str, State]
    failure: str | None = None


class PassStates:
    """The desired state of each policy per pass, read at most once per pass in this
    process; kept for the newest ``KEPT_PASSES`` passes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._passes: OrderedDict[str, dict[str, Desired]] = OrderedDict()

    def read(
        self, engine: EngineContext, policy: ReplicationPolicy, pass_id: str | None
    ) -> Desired:
        if pass_id is not None:
            with self._lock:
                found = self._passes.get(pass_id, {}).get(policy.id)
            if found is not None:
                return found
        try:
            found = Desired(KINDS[policy.kind].desired(engine, policy))
        except SiteCallFailed as failure:
            found = Desired({}, f"source unreachable: {failure.message}")
        if pass_id is not None:
            with self._lock:
                self._passes.setdefault(pass_id, {})[policy.id] = found
                self._passes.move_to_end(pass_id)
                while len(self._passes) > KEPT_PASSES:
                    self._passes.popitem(last=False)
        return found


STATES = PassStates()
_OUTSIDE: ContextVar[str | None] = ContextVar("replication_audit_pass", default=None)


@contextmanager
def one_pass() -> Iterator[None]:
    """Audit sites outside the engine's convergence pass as one pass: each policy's desired
    state is read once within."""
    token = _OUTSIDE.set(new_id())
    try:
        yield
    finally:
        _OUTSIDE.reset(token)


def _pass_id() -> str | None:
    """The convergence pass running (its workflow id), the ``one_pass`` around, or None."""
    return DBOS.workflow_id or _OUTSIDE.get()


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


@dataclass(frozen=True)
class Finding:
    """One policy at one site: the resources wanted, the drift found, and of what a job
    would write there, the names waiting out a backoff after the site refused them."""

    wanted: int
    drifted: list[Decision]
    waiting: set[str]

    @property
    def to_write(self) -> set[str]:
        return {d.name for d in self.drifted if d.outcome == "apply"}


def audit_policy(engine: EngineContext, policy: ReplicationPolicy, site: Site) -> Finding:
    """Compare one site with one policy."""
    kind = KINDS[policy.kind]
    desired = STATES.read(engine, policy, _pass_id())
    if desired.failure is not None:
        note_drift(policy.id, site.name, [], set(), desired.failure)
        return Finding(0, [], set())
    actual = engine.driver(site.id).call(f"list {kind.name}", kind.listing)
    wanted = set(policy.names) if policy.names is not None else None
    records = current_records(policy.id, site.id)
    decisions = decide(kind, desired.state, actual, records, policy.conflict, wanted)
    taken = {d.name for d in decisions}
    decisions += map(leftover, kind.leftovers(policy, site.id, desired.state, actual, taken))
    outcomes: dict[str, Outcome] = {}
    for decision in decisions:
        if decision.outcome == "adopt":
            found = actual[decision.name]
            save_record(policy.id, site.id, decision.name, found.id, kind.digest(found.state))
        in_sync = decision.drift is None or decision.outcome == "adopt"
        outcomes[decision.name] = ("done", None) if in_sync else ("drift", decision.note)
    drifted = [d for d in decisions if d.drift is not None and d.outcome != "adopt"]
    note_drift(policy.id, site.name, decisions, {d.name for d in drifted})
    kind.settled(policy, site.id, decisions, outcomes)
    finding = Finding(len(desired.state), drifted, set())
    fine = {name for name, (status, _note) in outcomes.items() if status == "done"}
    finding.waiting.update(backing_off(policy.id, site.id, finding.to_write, fine))
    return finding


def _start_job(engine: EngineContext, policy: ReplicationPolicy, reason: str) -> str:
    service = PolicyService(engine.db, engine.services.operations)
    try:
        return f"repairing: operation {service.act(policy.id, 'sync', None, reason, None).id}"
    except Conflict:
        return "a job of the policy runs: the next pass looks again"


def _act(engine: EngineContext, policy: ReplicationPolicy, site: Site, found: Finding) -> str:
    """Start a job for what the audit found at the site, unless all of it is waiting out a
    backoff; what was done, for the pass's repairs."""
    if not found.to_write:
        return "reported"
    if found.to_write <= found.waiting:
        return f"refused by the site: retried after a backoff ({', '.join(sorted(found.waiting))})"
    joined = not current_records(policy.id, site.id)  # nothing of the policy there yet
    return _start_job(engine, policy, "site_joined" if joined else "audit")


@checker
def audit_replication(engine: EngineContext, site: Site) -> tuple[int, list[dict[str, Any]]]:
    checked, repairs = 0, []
    for policy in _policies(engine, site):
        found = audit_policy(engine, policy, site)
        checked += found.wanted
        if not found.drifted:
            continue
        action = _act(engine, policy, site, found)
        repairs += [
            repair(
                f"replication.{policy.kind}", policy.id, site.name, f"{d.drift}: {d.name}", action
            )
            for d in found.drifted
        ]
    return checked, repairs
