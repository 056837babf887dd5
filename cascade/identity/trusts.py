"""Trusts (Keystone's OS-TRUST): a trustor delegates roles it holds on a project to a trustee,
who then asks for trust-scoped tokens (``cascade.identity.tokens``). Creating one, using one
up, deleting one, and their Keystone JSON (the token's section included).

Creation follows Keystone: the caller must be the trustor (403), the trustee must exist
(404), roles are given by id or name and the trustor must hold each on the project (404
otherwise, as Keystone's ``RoleNotFound``), a project needs at least one role (403), the
expiry must be ISO 8601 and ahead (400). ``allow_redelegation`` is off by default; when on,
``redelegation_count`` (at most ``MAX_REDELEGATION_COUNT``, its default) bounds the chain, and
``remaining_uses`` may not be set. A trustee holding a trust-scoped token of a redelegatable
trust creates the next trust of the chain: never with more roles, impersonation or time
than the trust it holds, one step shorter. Deleting a trust deletes the trusts redelegated
from it (the foreign key cascades). A trust with ``remaining_uses`` loses one for each token
issued from it (a write: at a replica such a trust issues none, 403 naming the master); once
none is left no token is issued (404) and the trust is no longer shown, while the tokens it
issued stay valid until they expire (Keystone refuses those too once the last use is gone;
here a use is counted when its token is issued, not again when it is validated).

Who may: the trustor creates and deletes (admins delete too); the trustor, the trustee,
admins and system readers read; listing every trust needs an admin or a system reader, and
listing by ``trustor_user_id`` or ``trustee_user_id`` is for that user (or them). No token
made from an application credential may read or manage trusts (403; Keystone's default
without ``allow_insecure_application_credential_trust_escalation``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update

from cascade.db.delegation_models import Trust
from cascade.db.models import Role, User
from cascade.errors import BadRequest, Forbidden, NotFound
from cascade.identity.delegation_schemas import TrustIn
from cascade.identity.delegations import (
    TRUST_TIME,
    Delegations,
    parse_expiry,
    role_of,
    show_time,
    usable_trust,
)
from cascade.identity.policy import authorize
from cascade.identity.snapshot import IdentitySnapshot
from cascade.identity.store import IdentityStore
from cascade.identity.tokens import AuthContext

MAX_REDELEGATION_COUNT = 3  # Keystone's [trust] max_redelegation_count


def check_delegated(ctx: AuthContext) -> None:
    if ctx.app_cred is not None:
        raise Forbidden("Delegated tokens cannot manage trusts.")


def may_read(ctx: AuthContext, trust: Trust) -> None:
    check_delegated(ctx)
    if ctx.user.id not in (trust.trustor_user_id, trust.trustee_user_id):
        authorize(ctx, "reader")


def may_list(ctx: AuthContext, trustor_user_id: str | None, trustee_user_id: str | None) -> None:
    check_delegated(ctx)
    if ctx.user.id not in {trustor_user_id or trustee_user_id}:
        authorize(ctx, "reader")


def shown(found: Delegations, trust_id: str) -> Trust:
    """A trust that still counts (not expired, uses left): others are 404, as Keystone's."""
    trust = usable_trust(found.trusts.get(trust_id))
    if trust is None:
        raise NotFound(f"Could not find trust: {trust_id}.")
    return trust


def create(
    store: IdentityStore, snapshot: IdentitySnapshot, ctx: AuthContext, body: TrustIn
) -> Trust:
    check_delegated(ctx)
    if body.project_id and not body.roles:
        raise Forbidden("At least one role should be specified.")
    if ctx.user.id != body.trustor_user_id:
        raise Forbidden("The authenticated user should match the trustor.")
    if body.trustee_user_id not in snapshot.users:
        raise NotFound(f"Could not find user: {body.trustee_user_id}.")
    if body.project_id is not None and body.project_id not in snapshot.projects:
        raise NotFound(f"Could not find project: {body.project_id}.")
    roles = [role_of(snapshot, ref).id for ref in body.roles]
    origin = ctx.trust
    trustor = origin.trustor_user_id if origin else body.trustor_user_id
    held = {r.id for r in snapshot.effective_roles(trustor, body.project_id or "")}
    for role_id in roles:
        if role_id not in held:
            raise NotFound(f"Could not find role: {role_id}.")
    fields = _chain(body, origin, roles, parse_expiry(body.expires_at))
    with store.writing("trust") as session:
        for user_id in (body.trustor_user_id, body.trustee_user_id):
            if session.get(User, user_id) is None:
                raise NotFound(f"Could not find user: {user_id}.")
        row = Trust(
            trustor_user_id=body.trustor_user_id,
            trustee_user_id=body.trustee_user_id,
            project_id=body.project_id,
            impersonation=body.impersonation,
            remaining_uses=body.remaining_uses,
            roles=roles,
            **fields,
        )
        session.add(row)
        session.flush()
        session.expunge(row)
        return row


def _chain(
    body: TrustIn, origin: Trust | None, roles: list[str], expires_at: datetime | None
) -> dict[str, Any]:
    """Expiry and redelegation of a new trust: its own, or bounded by ``origin``, the trust
    whose token creates it (redelegation)."""
    count = body.redelegation_count
    if not body.allow_redelegation or count == 0:
        count = 0
    elif body.remaining_uses is not None:
        raise BadRequest("remaining_uses must not be set if redelegation is allowed.")
    elif count is not None and count > MAX_REDELEGATION_COUNT:
        raise Forbidden(
            f"Requested redelegation depth of {count} is greater than allowed "
            f"{MAX_REDELEGATION_COUNT}."
        )
    if origin is None:
        return {
            "expires_at": expires_at,
            "redelegation_count": MAX_REDELEGATION_COUNT if count is None else count,
        }
    if origin.redelegation_count <= 0:
        raise Forbidden(f"Trust {origin.id} may not be redelegated.")
    if body.remaining_uses is not None:
        raise Forbidden("remaining_uses must not be set in order to redelegate a trust.")
    if body.project_id != origin.project_id or not set(roles) <= set(origin.roles):
        raise Forbidden("Some of requested roles are not in redelegated trust.")
    if body.impersonation and not origin.impersonation:
        raise Forbidden("Impersonation is not allowed because redelegated trust does not.")
    if origin.expires_at is not None and (expires_at is None or expires_at > origin.expires_at):
        if expires_at is not None:
            raise Forbidden("Requested expiration time is more than redelegated trust can provide.")
        expires_at = origin.expires_at
    remaining = origin.redelegation_count - 1
    if count and count != remaining:  # a redelegatable trust asking for another depth
        raise Forbidden('Modifying "redelegation_count" upon redelegation is forbidden.')
    return {
        "expires_at": expires_at,
        "redelegation_count": 0 if count == 0 else remaining,  # not redelegatable: the end
        "redelegated_trust_id": origin.id,
    }


def consume_use(store: IdentityStore, trust_id: str) -> None:
    """One token issued from the trust: one use fewer (404 when none was left)."""
    with store.writing("trust") as session:
        used = session.execute(
            update(Trust)
            .where(Trust.id == trust_id, Trust.remaining_uses > 0)
            .values(remaining_uses=Trust.remaining_uses - 1)
        )
        if used.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFound(f"Could not find trust: {trust_id}.")


def delete(store: IdentityStore, ctx: AuthContext, trust_id: str) -> None:
    check_delegated(ctx)
    with store.writing("trust") as session:
        trust = session.get(Trust, trust_id)
        if trust is None:
            raise NotFound(f"Could not find trust: {trust_id}.")
        if ctx.user.id != trust.trustor_user_id:
            authorize(ctx, "admin")
        session.delete(trust)


# -- Keystone JSON ---------------------------------------------------------------------------


def role(row: Role, base: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "domain_id": None,
        "links": {"self": f"{base}/v3/roles/{row.id}"},
    }


def trust(row: Trust, snapshot: IdentitySnapshot, base: str, with_roles: bool) -> dict[str, Any]:
    link = f"{base}/v3/OS-TRUST/trusts/{row.id}"
    body: dict[str, Any] = {
        "id": row.id,
        "trustor_user_id": row.trustor_user_id,
        "trustee_user_id": row.trustee_user_id,
        "project_id": row.project_id,
        "impersonation": row.impersonation,
        "expires_at": show_time(row.expires_at, TRUST_TIME),
        "remaining_uses": row.remaining_uses,
        "allow_redelegation": row.redelegation_count > 0,
        "redelegation_count": row.redelegation_count,
        "redelegated_trust_id": row.redelegated_trust_id,
        "deleted_at": None,
        "links": {"self": link},
    }
    if with_roles:
        body["roles"] = [role(snapshot.roles[r], base) for r in row.roles if r in snapshot.roles]
        body["roles_links"] = {"self": f"{link}/roles", "previous": None, "next": None}
    return body


def token_sections(ctx: AuthContext, snapshot: IdentitySnapshot, token: dict[str, Any]) -> None:
    """A trust-scoped token's ``OS-TRUST:trust`` section, and its user the trustor when the
    trust impersonates it."""
    row = ctx.trust
    if row is None:
        return
    token["OS-TRUST:trust"] = {
        "id": row.id,
        "trustor_user": {"id": row.trustor_user_id},
        "trustee_user": {"id": row.trustee_user_id},
        "impersonation": row.impersonation,
    }
    token.pop("is_domain", None)
    trustor = snapshot.users.get(row.trustor_user_id)
    if row.impersonation and trustor is not None:
        domain = snapshot.domains[trustor.domain_id]
        token["user"] = {
            "id": trustor.id,
            "name": trustor.name,
            "domain": {"id": domain.id, "name": domain.name},
            "password_expires_at": None,
        }
