"""Token issue, validation and revocation: Keystone's semantics on top of the Fernet format.

A token is valid when it decrypts with a key of the repository, has not expired, its user
and scope still exist and are enabled, the user still holds a role on the scope, and no
revocation event covers it. Everything but the decryption is read from the snapshot.

Delegation (``cascade.identity.delegations``): a token made with an application credential
holds its roles on its project; a trust-scoped token (asked for by the trustee) the trust's;
each is valid while what it was made from stands, never past its expiry, and neither can be
rescoped (the token method refuses them, 403, as Keystone does).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache

from cascade.db import Database
from cascade.db.delegation_models import ApplicationCredential, Trust
from cascade.db.models import SYSTEM_TARGET, Domain, Project, Role, User
from cascade.errors import BadRequest, Forbidden, Unauthorized, present
from cascade.identity.delegations import (
    app_cred_login,
    app_cred_roles,
    delegations,
    standing,
    trust_for_scope,
    trust_roles,
)
from cascade.identity.keys import KeyRepository
from cascade.identity.passwords import verify_password
from cascade.identity.schemas import (
    AppCredMethod,
    Auth,
    AuthScope,
    DomainRef,
    ProjectRef,
    UserRef,
)
from cascade.identity.snapshot import IdentitySnapshot
from cascade.identity.token_format import (
    InvalidToken,
    TokenFormatter,
    TokenPayload,
    new_audit_id,
)

DECODE_CACHE_SIZE = 65536
SYSTEM_ALL = "all"  # the one system scope Keystone has, as its Fernet payload carries it
KEY_CHECK_INTERVAL_S = 1.0
_NEVER = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class AuthContext:
    """Who is calling, in which scope, with which roles: the result of checking a token."""

    token_id: str
    payload: TokenPayload
    issued_at: datetime
    user: User
    user_domain: Domain
    roles: tuple[Role, ...]
    project: Project | None = None
    domain: Domain | None = None
    system: bool = False  # scoped to the whole deployment (Keystone's ``system: all``)
    trust: Trust | None = None  # a trust-scoped token's trust
    app_cred: ApplicationCredential | None = None  # the credential the token was made with

    @cached_property
    def role_names(self) -> frozenset[str]:
        return frozenset(role.name for role in self.roles)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.role_names


class TokenError(Unauthorized):
    """A token that is not (or no longer) valid; the message says why."""


class TokenService:
    def __init__(
        self,
        formatter: TokenFormatter,
        lifetime: timedelta,
        db: Database,
        watch_keys: KeyRepository | None = None,
    ) -> None:
        self._formatter = formatter
        self._db = db  # where the snapshot's delegation rows are read from
        self._lifetime = lifetime
        # Keys rotated or distributed by another process are picked up within a second.
        self._watched_keys = watch_keys
        self._keys_version = watch_keys.version() if watch_keys else 0
        self._keys_checked = time.monotonic()
        # A token's payload never changes, so its decryption is cached (callers present the
        # same token on every request). Expiry and every identity check still run each time.
        self._decode = lru_cache(maxsize=DECODE_CACHE_SIZE)(self._decode_uncached)

    def reload_keys(self) -> None:
        """Re-read the key repository; tokens of a removed key stop validating at once."""
        self._formatter.reload()
        self._decode.cache_clear()

    def _follow_keys(self) -> None:
        if (
            self._watched_keys is None
            or time.monotonic() - self._keys_checked < KEY_CHECK_INTERVAL_S
        ):
            return
        self._keys_checked = time.monotonic()
        version = self._watched_keys.version()
        if version != self._keys_version:
            self._keys_version = version
            self.reload_keys()

    def _decode_uncached(self, token_id: str) -> tuple[TokenPayload, datetime]:
        return self._formatter.validate(token_id), self._formatter.issued_at(token_id)

    # -- issue -----------------------------------------------------------------------------

    def issue(self, auth: Auth, snapshot: IdentitySnapshot) -> AuthContext:
        self._follow_keys()
        methods: list[str] = list(dict.fromkeys(auth.identity.methods))
        if "application_credential" in methods:
            return self._issue_for_app_cred(auth, methods, snapshot)
        user, parent = self._authenticate(auth, methods, snapshot)
        if parent is not None and (parent.trust or parent.app_cred):
            raise Forbidden(
                "Using a trust-scoped or delegated token to create another token is not allowed."
            )
        trust = None
        if isinstance(auth.scope, AuthScope) and auth.scope.trust is not None:
            trust = trust_for_scope(delegations(self._db, snapshot), snapshot, auth.scope, user)
        project, domain, system = (
            (snapshot.projects[str(trust.project_id)], None, False)
            if trust
            else self._resolve_scope(auth.scope, user, snapshot)
        )
        _wait_past_cutoffs(
            snapshot.revoked_users.get(user.id),
            snapshot.revoked_projects.get(project.id) if project else None,
        )
        if parent is not None:
            methods = list(dict.fromkeys([*parent.payload.methods, *methods]))
            expires_at = parent.payload.expires_at
            audit_ids: tuple[str, ...] = (new_audit_id(), parent.payload.audit_ids[-1])
        else:
            expires_at = datetime.now(UTC) + self._lifetime
            audit_ids = (new_audit_id(),)
        if trust is not None:
            expires_at = min(expires_at, trust.expires_at or _NEVER)
        payload = TokenPayload(
            user_id=user.id,
            methods=tuple(methods),
            expires_at=expires_at,
            audit_ids=audit_ids,
            project_id=project.id if project else None,
            domain_id=domain.id if domain else None,
            system=SYSTEM_ALL if system else None,
            trust_id=trust.id if trust else None,
        )
        return self.validate(self._formatter.create(payload), snapshot)

    def _issue_for_app_cred(
        self, auth: Auth, methods: list[str], snapshot: IdentitySnapshot
    ) -> AuthContext:
        """A token from an application credential: its user, its project, its roles, no
        later than it expires."""
        ref = auth.identity.application_credential
        if methods != ["application_credential"] or ref is None:
            raise BadRequest("The application_credential method is used alone, with its secret.")
        if auth.scope is not None:
            raise Unauthorized("Application credentials cannot request a scope.")
        user, app_cred = self._app_cred_login(ref, snapshot)
        _wait_past_cutoffs(
            snapshot.revoked_users.get(user.id), snapshot.revoked_projects.get(app_cred.project_id)
        )
        expires_at = min(datetime.now(UTC) + self._lifetime, app_cred.expires_at or _NEVER)
        payload = TokenPayload(
            user.id, ("application_credential",), expires_at, (new_audit_id(),), app_cred.project_id
        )
        payload = replace(payload, app_cred_id=app_cred.id)
        return self.validate(self._formatter.create(payload), snapshot)

    def _app_cred_login(
        self, ref: AppCredMethod, snapshot: IdentitySnapshot
    ) -> tuple[User, ApplicationCredential]:
        user_id = ref.user.id if ref.user else None
        if ref.user is not None and not user_id and ref.user.name:
            domain = _find_domain(ref.user.domain, snapshot, "application_credential.user")
            named = snapshot.user_by_name(ref.user.name, domain.id)
            user_id = named.id if named else ""
        found = delegations(self._db, snapshot)
        return app_cred_login(found, snapshot, (ref.id, ref.name, user_id), ref.secret)

    def _authenticate(
        self, auth: Auth, methods: list[str], snapshot: IdentitySnapshot
    ) -> tuple[User, AuthContext | None]:
        user: User | None = None
        parent: AuthContext | None = None
        if "token" in methods:
            if auth.identity.token is None:
                raise BadRequest("'token' method requires identity.token.id")
            try:
                parent = self.validate(auth.identity.token.id, snapshot)
            except TokenError as error:
                raise Unauthorized(f"The token given for the token method: {error}") from error
            user = parent.user
        if "password" in methods:
            if auth.identity.password is None:
                raise BadRequest("'password' method requires identity.password.user")
            password_user = self._check_password(auth.identity.password.user, snapshot)
            if user is not None and password_user.id != user.id:
                raise Unauthorized("The token and the password belong to different users.")
            user = password_user
        user = present(user, "the authenticating user")
        return user, parent

    @staticmethod
    def _check_password(ref: UserRef, snapshot: IdentitySnapshot) -> User:
        user: User | None
        if ref.id:
            user = snapshot.users.get(ref.id)
        elif ref.name:
            domain = _find_domain(ref.domain, snapshot, "user")
            user = snapshot.user_by_name(ref.name, domain.id)
        else:
            raise BadRequest("identity.password.user needs an id, or a name and a domain")
        if user is None or not verify_password(ref.password, user.password_hash):
            raise Unauthorized("The request you have made requires authentication.")
        if not user.enabled:
            raise Unauthorized(f"User {user.id} is disabled.")
        return user

    @staticmethod
    def _resolve_scope(
        scope: AuthScope | str | None, user: User, snapshot: IdentitySnapshot
    ) -> tuple[Project | None, Domain | None, bool]:
        if scope == "unscoped":
            return None, None, False
        if scope is None:
            default = snapshot.projects.get(user.default_project_id or "")
            if default and snapshot.effective_roles(user.id, default.id):
                return default, None, False
            return None, None, False
        if not isinstance(scope, AuthScope):
            raise BadRequest("The scope is not a project, domain or system.")
        if sum(s is not None for s in (scope.project, scope.domain, scope.system)) > 1:
            raise BadRequest("Specify only one of project, domain or system as the scope.")
        if scope.system is not None:
            if not scope.system.all:
                raise BadRequest('scope.system must be {"all": true}')
            if not snapshot.effective_roles(user.id, SYSTEM_TARGET):
                raise Unauthorized(f"User {user.id} has no access to the system.")
            return None, None, True
        if scope.project is not None:
            project = _find_project(scope.project, snapshot)
            if not snapshot.effective_roles(user.id, project.id):
                raise Unauthorized(f"User {user.id} has no access to project {project.id}.")
            return project, None, False
        if scope.domain is not None:
            domain = _find_domain(scope.domain, snapshot, "scope")
            if not snapshot.effective_roles(user.id, domain.id):
                raise Unauthorized(f"User {user.id} has no access to domain {domain.id}.")
            return None, domain, False
        raise BadRequest("scope needs a project, a domain, the system or 'unscoped'")

    # -- validate --------------------------------------------------------------------------

    def validate(self, token_id: str, snapshot: IdentitySnapshot) -> AuthContext:
        self._follow_keys()
        try:
            payload, issued_at = self._decode(token_id)
        except InvalidToken as error:
            raise TokenError(str(error)) from error
        if payload.expires_at <= datetime.now(UTC):
            raise TokenError("token has expired")
        user = snapshot.users.get(payload.user_id)
        if user is None or not user.enabled:
            raise TokenError("its user no longer exists or is disabled")
        user_domain = snapshot.domains.get(user.domain_id)
        if user_domain is None or not user_domain.enabled:
            raise TokenError("its user's domain is disabled")
        target = self._scope_target(payload, snapshot)
        trust: Trust | None = None
        app_cred: ApplicationCredential | None = None
        if payload.trust_id is not None or payload.app_cred_id is not None:
            try:
                trust, app_cred = standing(delegations(self._db, snapshot), snapshot, payload)
            except Unauthorized as error:
                raise TokenError(str(error)) from error
        roles: tuple[Role, ...] = ()
        if trust is not None:
            roles = tuple(trust_roles(snapshot, trust))
        elif app_cred is not None:
            roles = tuple(app_cred_roles(snapshot, app_cred))
        elif target is not None:
            target_id = target if isinstance(target, str) else target.id
            roles = tuple(snapshot.effective_roles(user.id, target_id))
        if target is not None and not roles:
            raise TokenError("its user no longer has a role on its scope")
        self._check_revocations(payload, issued_at, snapshot)
        return AuthContext(
            token_id=token_id,
            payload=payload,
            issued_at=issued_at,
            user=user,
            user_domain=user_domain,
            roles=roles,
            project=target if isinstance(target, Project) else None,
            domain=target if isinstance(target, Domain) else None,
            system=target == SYSTEM_TARGET,
            trust=trust,
            app_cred=app_cred,
        )

    @staticmethod
    def _scope_target(
        payload: TokenPayload, snapshot: IdentitySnapshot
    ) -> Project | Domain | str | None:
        """The project or domain a token is scoped to, ``SYSTEM_TARGET``, or None."""
        if payload.project_id is not None:
            project = snapshot.projects.get(payload.project_id)
            domain = snapshot.domains.get(project.domain_id) if project else None
            if project is None or not project.enabled or domain is None or not domain.enabled:
                raise TokenError("its project no longer exists or is disabled")
            return project
        if payload.domain_id is not None:
            scoped_domain = snapshot.domains.get(payload.domain_id)
            if scoped_domain is None or not scoped_domain.enabled:
                raise TokenError("its domain no longer exists or is disabled")
            return scoped_domain
        if payload.system is not None:
            if payload.system != SYSTEM_ALL:
                raise TokenError(f"its system scope {payload.system!r} is not 'all'")
            return SYSTEM_TARGET
        return None

    @staticmethod
    def _check_revocations(
        payload: TokenPayload, issued_at: datetime, snapshot: IdentitySnapshot
    ) -> None:
        if payload.audit_ids[0] in snapshot.revoked_audit_ids:
            raise TokenError("it has been revoked")
        user_cutoff = snapshot.revoked_users.get(payload.user_id)
        if user_cutoff is not None and issued_at <= user_cutoff:
            raise TokenError("it was issued before its user's credentials changed")
        project_cutoff = snapshot.revoked_projects.get(payload.project_id or "")
        if project_cutoff is not None and issued_at <= project_cutoff:
            raise TokenError("it was issued before its project was revoked")


def _wait_past_cutoffs(*cutoffs: datetime | None) -> None:
    """A token's issue time has one-second resolution (the Fernet timestamp), and a token
    issued in the same second as a revocation cutoff counts as revoked. So a token asked for
    in that second is minted at the start of the next one, rather than be born revoked."""
    latest = max((c for c in cutoffs if c is not None), default=None)
    if latest is None:
        return
    next_second = latest.replace(microsecond=0) + timedelta(seconds=1)
    delay = (next_second - datetime.now(UTC)).total_seconds()
    if delay > 0:
        time.sleep(delay)


def _find_domain(ref: DomainRef | None, snapshot: IdentitySnapshot, what: str) -> Domain:
    domain: Domain | None = None
    if ref is not None and ref.id:
        domain = snapshot.domains.get(ref.id)
    elif ref is not None and ref.name:
        domain = snapshot.domain_by_name(ref.name)
    else:
        raise BadRequest(f"{what} needs a domain id or name")
    if domain is None or not domain.enabled:
        raise Unauthorized("The request you have made requires authentication.")
    return domain


def _find_project(ref: ProjectRef, snapshot: IdentitySnapshot) -> Project:
    project: Project | None
    if ref.id:
        project = snapshot.projects.get(ref.id)
    elif ref.name:
        domain = _find_domain(ref.domain, snapshot, "scope.project")
        project = snapshot.project_by_name(ref.name, domain.id)
    else:
        raise BadRequest("scope.project needs an id, or a name and a domain")
    if project is None:
        raise Unauthorized("Could not find the project to scope to.")
    if not project.enabled:
        raise Unauthorized(f"Project {project.id} is disabled.")
    return project
