"""Application credentials and their access rules, as Keystone has them under
``/v3/users/{id}/application_credentials`` and ``/access_rules``: creating one for the
caller's project, deleting them, and their Keystone JSON (the token's section included).

A credential delegates the roles given (and the roles they imply), or every role of the
creating token, all of which the token must hold (400 otherwise). Its secret is generated
(64 random bytes, URL-safe) unless given, shown once in the answer to its creation and kept
only as a bcrypt hash. Access rules are the user's: a credential naming a rule the user
already has (same service, path and method, or its id) shares it; a rule outlives its
credentials and cannot be deleted while one uses it (403).

Who may: only the user itself creates one, with a project-scoped token; admins, system
readers and the user read them; admins and the user delete them. A trust-scoped token may do
none of it, and a token made from a credential that is not ``unrestricted`` may neither
create nor delete one (403, Keystone's ``_check_unrestricted_application_credential``).
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cascade.db.delegation_models import AccessRule, ApplicationCredential
from cascade.db.models import User
from cascade.errors import BadRequest, Forbidden, NotFound
from cascade.identity.delegation_schemas import AccessRuleIn, AppCredIn, RoleRefIn
from cascade.identity.delegations import (
    APP_CRED_TIME,
    Delegations,
    parse_expiry,
    role_of,
    secret_digest,
    show_time,
    with_implied,
)
from cascade.identity.passwords import hash_password
from cascade.identity.policy import authorize
from cascade.identity.snapshot import IdentitySnapshot
from cascade.identity.store import IdentityStore
from cascade.identity.tokens import AuthContext

SECRET_BYTES = 64


def check_delegated(ctx: AuthContext, managing: bool) -> None:
    """Keystone's limits on delegated tokens here: a trust-scoped token may not touch
    application credentials at all, a restricted credential's token may not create or delete
    one (``managing``)."""
    if ctx.trust is not None:
        raise Forbidden("Cannot manage application credentials with a token issued via delegation.")
    if managing and ctx.app_cred is not None and not ctx.app_cred.unrestricted:
        raise Forbidden(
            "Using method 'application_credential' is not allowed for managing additional "
            "application credentials."
        )


def may_read(ctx: AuthContext, user_id: str) -> None:
    check_delegated(ctx, managing=False)
    if ctx.user.id != user_id:
        authorize(ctx, "reader")


def may_delete(ctx: AuthContext, user_id: str) -> None:
    check_delegated(ctx, managing=True)
    if ctx.user.id != user_id:
        authorize(ctx, "admin")


def create(
    store: IdentityStore,
    snapshot: IdentitySnapshot,
    ctx: AuthContext,
    user_id: str,
    body: AppCredIn,
    rounds: int,
) -> tuple[ApplicationCredential, str]:
    """A new credential of ``user_id`` (the caller) on the caller's project, and its secret."""
    check_delegated(ctx, managing=True)
    if ctx.user.id != user_id:
        raise Forbidden("Cannot create an application credential for another user.")
    if ctx.project is None:
        raise BadRequest("An application credential is made with a project-scoped token.")
    roles = _delegated_roles(snapshot, ctx, body.roles)
    expires_at = parse_expiry(body.expires_at)
    secret = body.secret or secrets.token_urlsafe(SECRET_BYTES)
    with store.writing("application credential") as session:
        if session.get(User, user_id) is None:
            raise NotFound(f"Could not find user: {user_id}.")
        rules = None
        if body.access_rules is not None:
            rules = [_access_rule(session, user_id, rule).id for rule in body.access_rules]
        row = ApplicationCredential(
            name=body.name,
            user_id=user_id,
            project_id=ctx.project.id,
            description=body.description,
            secret_hash=hash_password(secret_digest(secret), rounds),
            expires_at=expires_at,
            unrestricted=bool(body.unrestricted),
            roles=roles,
            access_rules=rules,
        )
        session.add(row)
        session.flush()
        session.expunge(row)
        return row, secret


def _delegated_roles(
    snapshot: IdentitySnapshot, ctx: AuthContext, asked: list[RoleRefIn] | None
) -> list[str]:
    held = [role.id for role in ctx.roles]
    if not asked:
        return held
    wanted = with_implied(snapshot, [role_of(snapshot, ref).id for ref in asked])
    if not set(wanted) <= set(held):
        raise BadRequest(
            "Invalid application credential: Cannot create an application credential with "
            "unassigned role."
        )
    return wanted


def _access_rule(session: Session, user_id: str, rule: AccessRuleIn) -> AccessRule:
    """The user's rule with this id, or its rule for the same request, or a new one."""
    mine = select(AccessRule).where(AccessRule.user_id == user_id)
    if rule.service is None or rule.path is None or rule.method is None:
        found = session.scalar(mine.where(AccessRule.id == rule.id)) if rule.id else None
        if found is None:
            raise BadRequest("An access rule needs a service, a path and a method, or its id.")
        return found
    same = (rule.service, rule.path, rule.method)
    found = session.scalar(
        mine.where(AccessRule.service == same[0], AccessRule.path == same[1]).where(
            AccessRule.method == same[2]
        )
    )
    if found is None:
        found = AccessRule(user_id=user_id, service=same[0], path=same[1], method=same[2])
        if rule.id:
            found.id = rule.id
        session.add(found)
        session.flush()
    return found


def delete(store: IdentityStore, user_id: str, app_cred_id: str) -> None:
    with store.writing("application credential") as session:
        row = session.get(ApplicationCredential, app_cred_id)
        if row is None or row.user_id != user_id:
            raise NotFound(f"Could not find application credential: {app_cred_id}.")
        session.delete(row)


def delete_access_rule(store: IdentityStore, user_id: str, rule_id: str) -> None:
    with store.writing("access rule") as session:
        rule = session.get(AccessRule, rule_id)
        if rule is None or rule.user_id != user_id:
            raise NotFound(f"Could not find access rule: {rule_id}.")
        users = select(ApplicationCredential.access_rules).where(
            ApplicationCredential.user_id == user_id
        )
        if any(rule_id in (ids or []) for ids in session.scalars(users)):
            raise Forbidden("May not delete access rule in use.")
        session.delete(rule)


def owned(found: Delegations, user_id: str, app_cred_id: str) -> ApplicationCredential:
    row = found.app_creds.get(app_cred_id)
    if row is None or row.user_id != user_id:
        raise NotFound(f"Could not find application credential: {app_cred_id}.")
    return row


# -- Keystone JSON ---------------------------------------------------------------------------


def _rule(rule: AccessRule) -> dict[str, Any]:
    """An access rule as a credential (and its token) shows it: no links (Keystone's)."""
    return {"id": rule.id, "service": rule.service, "path": rule.path, "method": rule.method}


def access_rule(rule: AccessRule, base: str) -> dict[str, Any]:
    link = f"{base}/v3/users/{rule.user_id}/access_rules/{rule.id}"
    return {**_rule(rule), "links": {"self": link}}


def app_credential(
    row: ApplicationCredential, snapshot: IdentitySnapshot, found: Delegations, base: str
) -> dict[str, Any]:
    roles = [snapshot.roles[r] for r in row.roles if r in snapshot.roles]
    rules = [found.access_rules[r] for r in row.access_rules or [] if r in found.access_rules]
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "user_id": row.user_id,
        "project_id": row.project_id,
        "expires_at": show_time(row.expires_at, APP_CRED_TIME),
        "unrestricted": row.unrestricted,
        "roles": [
            {"id": r.id, "name": r.name, "domain_id": None, "description": r.description}
            for r in roles
        ],
        "access_rules": [_rule(rule) for rule in rules],
        "links": {"self": f"{base}/v3/users/{row.user_id}/application_credentials/{row.id}"},
    }


def token_section(row: ApplicationCredential, found: Delegations) -> dict[str, Any]:
    """The ``application_credential`` section of a token made with ``row``."""
    section: dict[str, Any] = {"id": row.id, "name": row.name, "restricted": not row.unrestricted}
    rules = [found.access_rules[r] for r in row.access_rules or [] if r in found.access_rules]
    if rules:
        section["access_rules"] = [_rule(r) for r in rules]
    return section
