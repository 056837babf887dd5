"""Keypairs as replication sees them: the desired state is Cascade's own keypairs of the
project (``/v1/keypairs``), compared with a site's keys by fingerprint (Nova's) alone. A
changed key cannot be edited in Nova: it is deleted and imported again. A site's keys are
listed a page at a time (``kinds.paged``, microversion 2.35). An import that meets Nova's 409
(another writer imported the name first) reads the key there: the same fingerprint is done,
a different one fails the item as a conflict and the next audit applies the policy's rule.
What the policy's jobs carry out and its audit finds at a site is written into the keypair's
copy there (``keypairs.set_copy``), so ``/v1/keypairs/{name}`` shows the copies the policy
made."""

from __future__ import annotations

from typing import Any

from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection
from sqlalchemy import select

from cascade.db.models import Keypair
from cascade.db.replication_models import ReplicationPolicy
from cascade.engine.context import EngineContext, context
from cascade.errors import CascadeError
from cascade.replication.keypairs import fingerprint, set_copy
from cascade.replication.kinds import (
    SITE_KEPT,
    Decision,
    Found,
    Kind,
    Outcome,
    State,
    paged,
    register,
)

MICROVERSION = "2.35"  # the first that pages keypairs (limit and marker)


class KeypairTaken(CascadeError):
    """Another writer imported a different key under the name between listing and import."""

    status = 409


def _name(entry: dict[str, Any]) -> str:
    return str(entry["keypair"]["name"])


def import_key(c: Connection, name: str, public_key: str) -> str:
    """Import ``public_key`` as ``name`` at the site; the fingerprint of the key under the
    name then. Two writers may import the same keypair at once (its own operation and a
    policy's job or audit): the second gets Nova's 409, and the key the first imported is
    read instead, so the same key converges quietly and a different one is the caller's
    conflict."""
    try:
        return str(c.compute.create_keypair(name=name, public_key=public_key).fingerprint)
    except sdk_exceptions.ConflictException:
        return str(c.compute.get_keypair(name).fingerprint)


def copy_status(decision: Decision, outcome: Outcome) -> tuple[str, str | None]:
    """The copy of a Cascade keypair at a site (one the policy wants there), after the
    policy's decision about it there and its outcome: (status, error)."""
    status, note = outcome
    if status == "done" and (decision.outcome == "adopt" or decision.note == SITE_KEPT):
        return "conflict", f"a different key of that name is at the site: {SITE_KEPT}"
    if status in ("done", "pending"):
        return ("present" if status == "done" else "pending"), None
    if decision.drift == "missing" and status == "drift":
        return "missing", note
    return ("conflict" if decision.drift == "changed" else "error"), note


class Keypairs(Kind):
    name = "keypairs"
    singular = "keypair"

    def listing(self, c: Connection) -> dict[str, Found]:
        entries = paged(c.compute, "/os-keypairs", "keypairs", {}, _name, MICROVERSION)
        keys = (entry["keypair"] for entry in entries)
        return {k["name"]: Found(k["name"], {"fingerprint": k["fingerprint"]}) for k in keys}

    def digest(self, state: State) -> str:
        return super().digest({"fingerprint": state["fingerprint"]})

    def write(
        self, c: Connection, name: str, state: State, found: Found | None, ids: dict[str, str]
    ) -> str:
        if found is not None:
            c.compute.delete_keypair(name, ignore_missing=True)
        theirs = import_key(c, name, state["public_key"])
        if theirs != state["fingerprint"]:
            raise KeypairTaken(
                f"a different key named {name} was imported at the site meanwhile (fingerprint "
                f"{theirs}, Cascade's is {state['fingerprint']}); the next audit applies the "
                "conflict rule"
            )
        return name

    def delete(self, c: Connection, found: Found) -> None:
        c.compute.delete_keypair(found.id, ignore_missing=True)

    def settled(
        self,
        policy: ReplicationPolicy,
        site_id: str,
        decisions: list[Decision],
        outcomes: dict[str, Outcome],
    ) -> None:
        with context().db.session() as session:
            rows = session.execute(
                select(Keypair.name, Keypair.id).where(
                    Keypair.project_id == policy.project_id, Keypair.status != "DELETING"
                )
            )
            keys = {name: keypair_id for name, keypair_id in rows}
            for decision in decisions:
                if decision.name in keys:  # wanted there: gone ones are the keypair's steps'
                    status, error = copy_status(decision, outcomes[decision.name])
                    set_copy(session, keys[decision.name], site_id, status, error)

    def desired(self, engine: EngineContext, policy: ReplicationPolicy) -> dict[str, State]:
        with engine.db.session() as session:
            keys = session.scalars(
                select(Keypair).where(
                    Keypair.project_id == policy.project_id, Keypair.status != "DELETING"
                )
            )
            return {
                k.name: {"fingerprint": fingerprint(k.public_key), "public_key": k.public_key}
                for k in keys
                if policy.names is None or k.name in policy.names
            }


KEYPAIRS = register(Keypairs())
