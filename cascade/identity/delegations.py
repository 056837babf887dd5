"""Delegation as tokens see it: application credentials, their access rules and trusts in
memory, and the rules that decide what a credential or a trust still grants.

The rows are read once per identity snapshot, on first use, from the database the snapshot
came from (so never older than it) and kept in the snapshot's memo: a write bumps the
revision, the next snapshot starts without them. Ordinary tokens never load them.

What they grant follows Keystone: an application credential gives its own roles on its
project while its user still holds every one of them there (Keystone deletes the credential
when its user loses a role on the project; here it stops working), until it expires; a trust
gives its roles and the roles they imply on its project while its trustor holds all of them,
until it expires. Times are parsed as Keystone's ``parse_expiration_date`` parses them.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from cascade.db import Database
from cascade.db.delegation_models import AccessRule, ApplicationCredential, Trust
from cascade.db.models import Role, User, utcnow
from cascade.errors import BadRequest, Forbidden, NotFound, Unauthorized
from cascade.identity.delegation_schemas import RoleRefIn
from cascade.identity.passwords import verify_password
from cascade.identity.schemas import AuthScope
from cascade.identity.snapshot import IdentitySnapshot
from cascade.identity.token_format import TokenPayload

MEMO_KEY = "delegations"
APP_CRED_TIME = "%Y-%m-%dT%H:%M:%S.%f"  # how Keystone shows a credential's expiry
TRUST_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # and a trust's


@dataclass(frozen=True)
class Delegations:
    app_creds: dict[str, ApplicationCredential]
    access_rules: dict[str, AccessRule]
    trusts: dict[str, Trust]

    def app_creds_of(self, user_id: str) -> list[ApplicationCredential]:
        found = [c for c in self.app_creds.values() if c.user_id == user_id]
        return sorted(found, key=lambda c: (c.created_at, c.id))

    def app_cred_named(self, user_id: str, name: str) -> ApplicationCredential | None:
        return next((c for c in self.app_creds_of(user_id) if c.name == name), None)

    def access_rules_of(self, user_id: str) -> list[AccessRule]:
        found = [r for r in self.access_rules.values() if r.user_id == user_id]
        return sorted(found, key=lambda r: r.id)


def delegations(db: Database, snapshot: IdentitySnapshot) -> Delegations:
    """The delegation rows that go with ``snapshot``, loaded on first use."""
    found: Delegations | None = snapshot.memo.get(MEMO_KEY)
    if found is None:
        with db.session() as session:
            found = Delegations(
                app_creds={c.id: c for c in session.scalars(select(ApplicationCredential))},
                access_rules={r.id: r for r in session.scalars(select(AccessRule))},
                trusts={t.id: t for t in session.scalars(select(Trust))},
            )
            session.expunge_all()
        snapshot.memo[MEMO_KEY] = found
    return found


def parse_expiry(text: str | None) -> datetime | None:
    """An ISO 8601 expiry (UTC when it names no zone), which must not have passed."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            f"Invalid expires_at {text!r}: timestamp not in expected format (ISO 8601)."
        ) from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when <= utcnow():
        raise BadRequest("The 'expires_at' must not be before now.")
    return when


def show_time(when: datetime | None, layout: str) -> str | None:
    return None if when is None else when.astimezone(UTC).strftime(layout)


def expired(when: datetime | None) -> bool:
    return when is not None and when <= utcnow()


def with_implied(snapshot: IdentitySnapshot, role_ids: list[str]) -> list[str]:
    """The roles and every role they imply, in order, each once."""
    found = list(dict.fromkeys(role_ids))
    for role_id in list(found):
        found.extend(r for r in snapshot.implied_by(role_id) if r not in found)
    return found


def role_of(snapshot: IdentitySnapshot, ref: RoleRefIn) -> Role:
    """A role given by its id or by its name (exactly one), 404 if there is none."""
    if (ref.id is None) == (ref.name is None):
        raise BadRequest("A role is given by its id or by its name.")
    role = snapshot.roles.get(ref.id) if ref.id else snapshot.role_by_name(str(ref.name))
    if role is None:
        raise NotFound(f"Could not find role: {ref.id or ref.name}.")
    return role


def _held(snapshot: IdentitySnapshot, user_id: str, project_id: str) -> set[str]:
    return {role.id for role in snapshot.effective_roles(user_id, project_id)}


def app_cred_roles(snapshot: IdentitySnapshot, app_cred: ApplicationCredential) -> list[Role]:
    """What a token made with ``app_cred`` holds; empty once its user lost one of them."""
    held = _held(snapshot, app_cred.user_id, app_cred.project_id)
    if not set(app_cred.roles) <= held:
        return []
    return sorted((snapshot.roles[r] for r in app_cred.roles), key=lambda role: role.name)


def trust_roles(snapshot: IdentitySnapshot, trust: Trust) -> list[Role]:
    """What a token scoped to ``trust`` holds (its roles and what they imply); empty once
    its trustor lost one of them on the trust's project."""
    if trust.project_id is None:
        return []
    wanted = with_implied(snapshot, [r for r in trust.roles if r in snapshot.roles])
    held = _held(snapshot, trust.trustor_user_id, trust.project_id)
    if not wanted or not set(wanted) <= held:
        return []
    return sorted((snapshot.roles[r] for r in wanted), key=lambda role: role.name)


def usable_trust(trust: Trust | None) -> Trust | None:
    """The trust, if a token may still be issued from it (not expired, uses left)."""
    if trust is None or expired(trust.expires_at):
        return None
    if trust.remaining_uses is not None and trust.remaining_uses <= 0:
        return None
    return trust


def secret_digest(secret: str) -> str:
    """What is bcrypt-hashed for a credential's secret: its SHA-256, so a secret of any length
    (Keystone generates 86 characters; bcrypt reads 72 bytes) counts in full."""
    return base64.b64encode(hashlib.sha256(secret.encode()).digest()).decode("ascii")


def app_cred_login(
    found: Delegations,
    snapshot: IdentitySnapshot,
    ref: tuple[str | None, str | None, str | None],
    secret: str,
) -> tuple[User, ApplicationCredential]:
    """The user and the application credential ``ref`` names (by id, or by name and its
    user's id), if ``secret`` is its secret and it has not expired (401 otherwise)."""
    app_cred_id, name, user_id = ref
    if app_cred_id:
        app_cred = found.app_creds.get(app_cred_id)
    elif name and user_id is not None:
        app_cred = found.app_cred_named(user_id, name)
    else:
        raise BadRequest("application_credential needs an id, or a name and its user")
    if app_cred is None or not verify_password(secret_digest(secret), app_cred.secret_hash):
        raise Unauthorized("Invalid application credential ID or secret.")
    if expired(app_cred.expires_at):
        raise Unauthorized(f"Application credential {app_cred.id} has expired.")
    user = snapshot.users.get(app_cred.user_id)
    if user is None or not user.enabled:
        raise Unauthorized(f"User {app_cred.user_id} is disabled or no longer exists.")
    return user, app_cred


def trust_for_scope(
    found: Delegations, snapshot: IdentitySnapshot, scope: AuthScope, user: User
) -> Trust:
    """The trust ``user`` asks a token to be scoped to, checked as Keystone checks it."""
    if scope.project is not None or scope.domain is not None or scope.system is not None:
        raise BadRequest("Specify only one of project, domain, system or OS-TRUST:trust.")
    trust_id = scope.trust.id if scope.trust else ""
    trust = usable_trust(found.trusts.get(trust_id))
    if trust is None:
        raise NotFound(f"Could not find trust: {trust_id}.")
    if trust.trustee_user_id != user.id:
        raise Forbidden("User is not a trustee.")
    trustor = snapshot.users.get(trust.trustor_user_id)
    if trustor is None or not trustor.enabled:
        raise Forbidden("Trustor is disabled.")
    if trust.project_id not in snapshot.projects:
        raise Forbidden(f"Trust {trust_id} has no project to scope a token to.")
    if not trust_roles(snapshot, trust):
        raise Forbidden("Trustee has no delegated roles.")
    return trust


def standing(
    found: Delegations, snapshot: IdentitySnapshot, payload: TokenPayload
) -> tuple[Trust | None, ApplicationCredential | None]:
    """The trust or application credential a token was made from, if it still stands
    (401 otherwise): same user and project, not expired, the trustor still enabled."""
    scope = (payload.user_id, payload.project_id)
    if payload.trust_id is not None:
        trust = found.trusts.get(payload.trust_id)
        if trust is None or expired(trust.expires_at):
            raise Unauthorized("its trust no longer exists or has expired")
        if (trust.trustee_user_id, trust.project_id) != scope:
            raise Unauthorized("its trust is not its user's on its project")
        trustor = snapshot.users.get(trust.trustor_user_id)
        if trustor is None or not trustor.enabled:
            raise Unauthorized("its trustor no longer exists or is disabled")
        return trust, None
    app_cred = found.app_creds.get(str(payload.app_cred_id))
    if app_cred is None or expired(app_cred.expires_at):
        raise Unauthorized("its application credential no longer exists or has expired")
    if (app_cred.user_id, app_cred.project_id) != scope:
        raise Unauthorized("its application credential is not its user's on its project")
    return None, app_cred
