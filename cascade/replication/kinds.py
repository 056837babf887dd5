"""What replication knows of each resource kind, and the one rule that compares a site with
the desired state.

A ``Kind`` lists a site's resources of its kind by name (each with its id there and its
state, comparable across sites once site-local ids are named), writes one (create or
update), deletes one, and reads the desired state (the source site's resources, or Cascade's
own records for keypairs). ``decide`` compares a site with the desired state and Cascade's
records of what it put there, and says per name what drifted (missing, extra, changed) and
what to do under the policy's conflict rule; the jobs (``policy_steps``) apply it and the
audit (``audit``) classifies and reports with it. Kinds register themselves in ``KINDS``.
May import ``cascade.engine``, ``cascade.db``, ``cascade.errors`` and ``openstack``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection

from cascade.db.replication_models import ReplicationPolicy
from cascade.engine.context import EngineContext

State = dict[str, Any]
Outcome = tuple[str, str | None]  # an item's status (done, drift, error, pending) and note
CASCADE_WINS, SITE_WINS, REPORT = "cascade_wins", "site_wins", "report"
CONFLICT_RULES = (CASCADE_WINS, SITE_WINS, REPORT)
SITE_KEPT = "the site's own version, adopted as Cascade's record (rule site_wins)"


@dataclass(frozen=True)
class Found:
    """A resource at a site: its id there, its state, and what only its kind reads (the ids
    of a security group's rules)."""

    id: str
    state: State
    detail: dict[str, Any] = field(default_factory=dict)


PAGE = 1000  # resources per page of a site's listing (Nova's and Neutron's default maximum)


def paged(
    proxy: Any,
    path: str,
    key: str,
    params: dict[str, Any],
    marker: Callable[[dict[str, Any]], str],
    microversion: str | None = None,
) -> Iterator[dict[str, Any]]:
    """A site's listing as its JSON, ``PAGE`` at a time (``limit`` and ``marker``, following
    the ``<key>_links`` next link as Nova and Neutron give it), read through the connection's
    own session as plain dicts: building an openstacksdk object per resource costs more than
    the rest of an audit's comparison. ``marker`` reads the marker from a page's last entry."""
    params = {**params, "limit": PAGE}
    while True:
        response = proxy.get(path, params=params, microversion=microversion)
        sdk_exceptions.raise_from_response(response)
        body = response.json()
        page: list[dict[str, Any]] = body.get(key, [])
        yield from page
        more = any(link.get("rel") == "next" for link in body.get(f"{key}_links", []))
        if not (more and page):
            return
        params = {**params, "marker": marker(page[-1])}


def _digest(state: State) -> str:
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


class Kind:
    """One resource kind. ``site_global``: the site's resources of this kind are shared by
    every tenant (flavors), so Cascade never overwrites or deletes one it did not put there;
    otherwise they are the project's own account's, and ``cascade_wins`` takes a same-named
    one over and removes extra ones."""

    name = ""
    singular = ""
    site_global = False
    copied = False  # written by a step of its own per resource and site (images), not here

    def listing(self, c: Connection) -> dict[str, Found]:
        raise NotImplementedError

    def digest(self, state: State) -> str:
        """What two states are compared by (equal digests: in sync)."""
        return _digest(state)

    def in_scope(self, name: str) -> bool:
        """Whether a resource of this name at a site is the policy's business at all."""
        return True

    def placeholders(self, c: Connection, names: Iterable[str], ids: dict[str, str]) -> None:
        """Create what the others' states refer to before any is written (``ids``: name ->
        id at the site, updated in place)."""

    def write(
        self, c: Connection, name: str, state: State, found: Found | None, ids: dict[str, str]
    ) -> str:
        """Make the site's resource ``name`` have ``state``; returns its id there."""
        raise NotImplementedError

    def delete(self, c: Connection, found: Found) -> None:
        raise NotImplementedError

    def settled(
        self,
        policy: ReplicationPolicy,
        site_id: str,
        decisions: list[Decision],
        outcomes: dict[str, Outcome],
    ) -> None:
        """What a job carried out or the audit found at a site, per name, for a kind whose
        resources show it elsewhere too (keypairs: the copies ``/v1/keypairs`` shows)."""

    def leftovers(
        self,
        policy: ReplicationPolicy,
        site_id: str,
        desired: dict[str, State],
        actual: dict[str, Found],
        taken: set[str],
    ) -> dict[str, Callable[[], None]]:
        """Cascade's unfinished work at the site for what is gone from the source (an image
        copy whose source image was removed), which no decision names, found from ``actual``
        (the site's ``listing``, not read again): by the name of its item (not one of
        ``taken``), a call that removes it. None for most kinds."""
        return {}

    def desired(self, engine: EngineContext, policy: ReplicationPolicy) -> dict[str, State]:
        """The desired state: the source site's resources (only the policy's names)."""
        source = policy.source_site_id or ""
        found = engine.driver(source).call(f"list {self.name}", self.listing)
        return {
            name: item.state
            for name, item in found.items()
            if self.in_scope(name) and (policy.names is None or name in policy.names)
        }


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    return kind


@dataclass(frozen=True)
class Decision:
    """One name at one site: ``drift`` (missing, extra, changed, or None: in sync),
    ``action`` (create, update, delete, none), ``outcome`` (apply: carry the action out;
    adopt: record the site's version as Cascade's; drift: report it; conflict: a failure
    naming the resource; ok: nothing to do; forget: drop a stale record) and why."""

    name: str
    drift: str | None
    action: str
    outcome: str
    note: str | None = None


LEFTOVER = "Cascade's unfinished copy of what is gone from the source: deleted with what it staged"


def leftover(name: str) -> Decision:
    """A kind's leftover at a site (``Kind.leftovers``): extra, to delete."""
    return Decision(name, "extra", "delete", "apply", LEFTOVER)


def decide(
    kind: Kind,
    desired: dict[str, State],
    actual: dict[str, Found],
    records: dict[str, str],
    rule: str,
    wanted: set[str] | None = None,
) -> list[Decision]:
    """What to do at one site (``records``: name -> digest Cascade expects there; ``wanted``:
    the names a policy limited itself to)."""
    names = set(desired) | set(records)
    names |= {n for n in actual if kind.in_scope(n) and (wanted is None or n in wanted)}
    return [
        _one(kind, name, desired.get(name), actual.get(name), records.get(name), rule)
        for name in sorted(names)
    ]


def _one(
    kind: Kind, name: str, want: State | None, have: Found | None, record: str | None, rule: str
) -> Decision:
    if want is None:
        return _unwanted(kind, name, have, record, rule)
    if have is None:
        if record is not None and rule == REPORT:
            why = "deleted at the site behind Cascade's back: reported (rule report)"
            return Decision(name, "missing", "create", "drift", why)
        return Decision(name, "missing", "create", "apply")
    theirs = kind.digest(have.state)
    if theirs == kind.digest(want):
        return Decision(name, None, "none", "ok")
    if record == theirs and rule == SITE_WINS:
        return Decision(name, None, "none", "ok", SITE_KEPT)
    if record is None and (kind.site_global or rule == REPORT):
        why = f"conflict: a different {kind.singular} named {name} is at the site; left as it is"
        return Decision(name, "changed", "update", "conflict", why)
    if rule == CASCADE_WINS:
        return Decision(name, "changed", "update", "apply")
    if rule == SITE_WINS:
        return Decision(name, "changed", "none", "adopt", "the site's version adopted")
    why = "changed at the site behind Cascade's back: reported (rule report)"
    return Decision(name, "changed", "update", "drift", why)


def _unwanted(kind: Kind, name: str, have: Found | None, record: str | None, rule: str) -> Decision:
    if have is None:
        return Decision(name, None, "none", "forget")
    if record == kind.digest(have.state) or (record is not None and rule == CASCADE_WINS):
        return Decision(name, "extra", "delete", "apply")
    if rule == CASCADE_WINS and not kind.site_global:
        return Decision(name, "extra", "delete", "apply")
    whose = "changed at the site since Cascade put it there" if record else "not Cascade's"
    return Decision(name, "extra", "delete", "drift", f"{whose}: left as it is (rule {rule})")
