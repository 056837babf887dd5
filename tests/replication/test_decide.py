"""The one rule comparing a site with the desired state (``kinds.decide``), case by case under
each conflict rule: what drifted (missing, extra, changed) and what a job does about it. The
flavor kind is site-global (never overwrites or deletes what Cascade did not put there); the
security group kind is the project's own (cascade_wins takes a same-named group over)."""

from __future__ import annotations

import pytest

from cascade.replication.flavor_kind import FLAVORS
from cascade.replication.group_kind import SECURITY_GROUPS
from cascade.replication.kinds import (
    CASCADE_WINS,
    REPORT,
    SITE_WINS,
    Found,
    Kind,
    State,
    decide,
)

OURS: State = {"rules": ["a"]}
THEIRS: State = {"rules": ["b"]}


def one(
    kind: Kind, want: State | None, have: State | None, record: State | None, rule: str
) -> tuple[str | None, str, str]:
    desired = {"x": want} if want is not None else {}
    actual = {"x": Found("id-x", have)} if have is not None else {}
    records = {"x": kind.digest(record)} if record is not None else {}
    (decision,) = decide(kind, desired, actual, records, rule)
    return decision.drift, decision.action, decision.outcome


@pytest.mark.parametrize("rule", [CASCADE_WINS, SITE_WINS, REPORT])
def test_in_sync_and_new_sites_are_the_same_under_every_rule(rule: str) -> None:
    assert one(SECURITY_GROUPS, OURS, OURS, OURS, rule) == (None, "none", "ok")
    assert one(SECURITY_GROUPS, OURS, OURS, None, rule) == (None, "none", "ok")
    # Never at the site (a site new to the policy): created whatever the rule.
    assert one(SECURITY_GROUPS, OURS, None, None, rule) == ("missing", "create", "apply")
    # Gone from the source: what Cascade put there is deleted.
    assert one(SECURITY_GROUPS, None, OURS, OURS, rule) == ("extra", "delete", "apply")
    # Gone everywhere: the stale record is dropped.
    assert one(SECURITY_GROUPS, None, None, OURS, rule) == (None, "none", "forget")


def test_cascade_wins_repairs() -> None:
    assert one(SECURITY_GROUPS, OURS, None, OURS, CASCADE_WINS) == ("missing", "create", "apply")
    assert one(SECURITY_GROUPS, OURS, THEIRS, OURS, CASCADE_WINS) == ("changed", "update", "apply")
    assert one(SECURITY_GROUPS, OURS, THEIRS, None, CASCADE_WINS) == ("changed", "update", "apply")
    assert one(SECURITY_GROUPS, None, THEIRS, None, CASCADE_WINS) == ("extra", "delete", "apply")
    assert one(SECURITY_GROUPS, None, THEIRS, OURS, CASCADE_WINS) == ("extra", "delete", "apply")


def test_site_wins_adopts_the_sites_version() -> None:
    assert one(SECURITY_GROUPS, OURS, THEIRS, OURS, SITE_WINS) == ("changed", "none", "adopt")
    assert one(SECURITY_GROUPS, OURS, THEIRS, THEIRS, SITE_WINS) == (None, "none", "ok")
    assert one(SECURITY_GROUPS, None, THEIRS, None, SITE_WINS) == ("extra", "delete", "drift")
    # Gone from the source, but changed at the site since: the site's now.
    assert one(SECURITY_GROUPS, None, THEIRS, OURS, SITE_WINS) == ("extra", "delete", "drift")


def test_report_only_reports_what_changed_behind_cascades_back() -> None:
    assert one(SECURITY_GROUPS, OURS, None, OURS, REPORT) == ("missing", "create", "drift")
    assert one(SECURITY_GROUPS, OURS, THEIRS, OURS, REPORT) == ("changed", "update", "drift")
    assert one(SECURITY_GROUPS, OURS, THEIRS, None, REPORT) == ("changed", "update", "conflict")
    assert one(SECURITY_GROUPS, None, THEIRS, None, REPORT) == ("extra", "delete", "drift")
    assert one(SECURITY_GROUPS, None, THEIRS, OURS, REPORT) == ("extra", "delete", "drift")


@pytest.mark.parametrize("rule", [CASCADE_WINS, SITE_WINS, REPORT])
def test_a_flavor_cascade_did_not_put_there_is_never_touched(rule: str) -> None:
    ours, theirs = {"id": "1", "ram": 1}, {"id": "1", "ram": 2}
    assert one(FLAVORS, ours, theirs, None, rule) == ("changed", "update", "conflict")
    assert one(FLAVORS, None, theirs, None, rule) == ("extra", "delete", "drift")


def test_the_default_group_and_names_outside_the_policy_are_not_its_business() -> None:
    actual = {"default": Found("d", THEIRS), "other": Found("o", THEIRS), "x": Found("x", OURS)}
    decisions = decide(SECURITY_GROUPS, {"x": OURS}, actual, {}, CASCADE_WINS, wanted={"x"})
    assert [(d.name, d.outcome) for d in decisions] == [("x", "ok")]
