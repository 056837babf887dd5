"""A site's health as the Sites page shows it, from what the control plane already records
(no call to any site while a page renders): whether the newest convergence passes reached the
site's APIs, and, for an identity replica, how it follows the master. Pure functions of what
the page reads. HTTP only by package (``cascade.ui``), no I/O here.

Reaching the site: every convergence pass calls every site in service (it lists the site's
servers before anything else) and records a call that failed as a repair of resource type
``site``. So the newest finished pass that judged a site says whether the control plane can
reach it: a failure there makes the site red at once, with the site's error, and the newest
pass without one is its last contact. A pass that stopped early (failed) or still runs says
nothing about the sites it did not record.

Following the master (replica sites, admins only: the replica report is admin-only): the
only follower, ``cascade.identity.follower``, long-polls the master for at most 10 s and
notes itself at every poll, so a replica not seen for ``QUIET_AFTER_S`` is cut off from the
master (or down) long before the identity log calls it silent (75 s, which allows any long
poll up to 60 s); one holding changes older than ``BEHIND_AFTER_S`` is behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cascade.engine.schemas import ConvergencePassOut
from cascade.identity.changelog import ReplicaLag
from cascade.sites.schemas import SiteOut

# A replica that follows applies a change within a second or so (long poll); one holding
# changes older than this is behind (its link is cut, or it fails to apply them).
BEHIND_AFTER_S = 10.0
# Three of the follower's 10 s long polls with their round trips: not seen for longer, a
# replica is not polling.
QUIET_AFTER_S = 30.0
# Convergence passes read for the sites' last contact (one statement, newest first).
CONTACT_PASSES = 20


@dataclass(frozen=True)
class Contact:
    """What the newest convergence passes say about reaching one site's APIs."""

    reached_at: datetime | None  # the end of the newest pass that reached it
    failure: str | None  # the site's error, when the newest pass that judged it failed


NO_CONTACT = Contact(None, None)


def contacts(passes: list[ConvergencePassOut], sites: list[SiteOut]) -> dict[str, Contact]:
    """Per site id, its contact according to ``passes`` (newest first)."""
    failed: dict[str, dict[str, str]] = {}  # site id -> pass id -> the site's error
    for found in passes:
        for repair in found.repairs:
            if repair.resource.type == "site":
                failed.setdefault(repair.resource.id, {})[found.id] = repair.drift
    return {site.id: _contact(site, passes, failed.get(site.id, {})) for site in sites}


def _contact(site: SiteOut, passes: list[ConvergencePassOut], failures: dict[str, str]) -> Contact:
    failure = None
    for found in passes:
        if found.finished_at is None or found.started_at < site.created_at:
            continue  # still running, or begun before the site was registered
        if found.id in failures:
            failure = failure or failures[found.id]  # the newest judgement stands
        elif found.status == "succeeded":
            return Contact(found.finished_at, failure)
    return Contact(None, failure)


@dataclass(frozen=True)
class SiteRow:
    name: str
    region: str
    identity: str
    health: str  # ok, unreachable, cut off, behind, keys differ, not following, not checked yet
    colour: str  # green, red, amber, grey
    reason: str | None  # the site's error, when the control plane cannot reach it
    last_contact: datetime | None  # the control plane's, through a convergence pass
    behind: int | None = None
    lag_s: float | None = None
    key_set: str | None = None
    keys_match: bool | None = None
    last_poll: datetime | None = None  # the replica's, at the master


def _replica_health(lag: ReplicaLag, master_keys: str) -> tuple[str, str]:
    if lag.seen_s > QUIET_AFTER_S:
        return f"cut off (no poll for {lag.seen_s:.0f} s)", "red"
    if lag.behind and lag.lag_s > BEHIND_AFTER_S:
        return "behind", "red"
    if lag.key_set != master_keys:
        return "keys differ", "amber"
    return "ok", "green"


def site_row(
    site: SiteOut, contact: Contact, lag: ReplicaLag | None, master_keys: str | None
) -> SiteRow:
    """The site's row. Its health: unreachable first, then, for a replica whose report the
    viewer may read (``master_keys`` given), how it follows the master; the replica's columns
    are filled whenever that report has it."""
    replica = site.identity == "replica" and master_keys is not None
    if contact.failure is not None:
        health = ("unreachable", "red")
    elif not replica:
        health = ("ok", "green") if contact.reached_at is not None else ("not checked yet", "grey")
    elif lag is None:
        health = ("not following", "red")
    else:
        health = _replica_health(lag, str(master_keys))
    following: tuple[Any, ...] = (None,) * 5
    if replica and lag is not None:
        keys_match = lag.key_set == master_keys
        following = (lag.behind, round(lag.lag_s, 1), lag.key_set, keys_match, lag.seen_at)
    return SiteRow(
        site.name, site.region_name, site.identity, *health, contact.failure,
        contact.reached_at, *following,
    )  # fmt: skip
