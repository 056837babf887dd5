"""The dashboard's session: logging in through Cascade's identity, the cookie, CSRF tokens,
logging out. HTTP only (``cascade.ui``).

Logging in issues a Cascade token with the token service ``POST /identity/v3/auth/tokens``
uses (no second authentication); the token itself is the session, held in an HttpOnly,
SameSite=Strict cookie and checked on every request as the API checks ``X-Auth-Token``.
Logging out revokes it as ``DELETE /identity/v3/auth/tokens`` does, so the API refuses it too.

CSRF: every form that changes something carries a synchronizer token bound to the session,
HMAC-SHA256 keyed by the session's token (stdlib ``hmac``): only a page served to the holder
of the cookie can know it, it needs no key of its own, and any Cascade process checks it.
The login form, before there is a session, uses a double-submit token: a random value in a
SameSite=Strict cookie that the form must repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import cached_property

from fastapi import Request, Response
from pydantic import ValidationError

from cascade.errors import BadRequest, Forbidden, Unauthorized
from cascade.identity.policy import authorize, visible_projects
from cascade.identity.schemas import AuthRequest
from cascade.identity.tokens import AuthContext
from cascade.services import Services
from cascade.ui.web import form, services

SESSION_COOKIE = "cascade_session"
LOGIN_COOKIE = "cascade_login_csrf"
CSRF_FIELD = "csrf"
_CSRF_CONTEXT = b"cascade-ui-csrf-v1"


def csrf_for(token: str) -> str:
    """The CSRF token of the session holding ``token``."""
    return hmac.new(token.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Viewer:
    """Who looks at the dashboard: the checked token and what the role rule lets it do."""

    ctx: AuthContext
    csrf: str

    @cached_property
    def projects(self) -> set[str] | None:
        """Project ids it may see (None: every project)."""
        return visible_projects(self.ctx)

    @property
    def name(self) -> str:
        project = self.ctx.project.name if self.ctx.project is not None else "no project"
        return f"{self.ctx.user.name} @ {project}"

    @property
    def is_admin(self) -> bool:
        return self.ctx.is_admin

    @cached_property
    def can_act(self) -> bool:
        """Whether it may change its project's resources (member, or admin)."""
        if self.ctx.project is None:
            return False
        try:
            authorize(self.ctx, "member", self.ctx.project.id)
        except Forbidden:
            return False
        return True

    def check_csrf(self, fields: dict[str, str]) -> None:
        if not hmac.compare_digest(fields.get(CSRF_FIELD, ""), self.csrf):
            raise Forbidden("The form's CSRF token is missing or wrong: reload the page.")

    def project_id(self) -> str:
        """The project a change acts in, once the caller may act there (403 otherwise)."""
        if self.ctx.project is None:
            raise Forbidden("Changing something needs a project-scoped login.")
        authorize(self.ctx, "member", self.ctx.project.id)
        return self.ctx.project.id


def viewer(request: Request) -> Viewer:
    """The dependency of every page behind the login: the session's token, checked."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise Unauthorized("Log in first.")
    return Viewer(services(request).check_token(token), csrf_for(token))


async def acting(request: Request, who: Viewer) -> tuple[dict[str, str], str]:
    """A posted form that changes something: its fields once its CSRF token is checked, and
    the project the change acts in (403 unless the viewer may act there)."""
    fields = await form(request)
    who.check_csrf(fields)
    return fields, who.project_id()


def login_csrf(request: Request) -> str:
    """The login form's double-submit value: the cookie's, or a new one."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def remember_login_csrf(request: Request, response: Response, value: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE, value, httponly=True, samesite="strict", secure=_secure(request), path="/ui"
    )


def log_in(request: Request, svc: Services, fields: dict[str, str]) -> AuthContext:
    """Check the login form's CSRF value, then issue a token as ``POST /auth/tokens`` does."""
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(fields.get(CSRF_FIELD, ""), expected):
        raise Forbidden("The login form's CSRF token is missing or wrong: reload the page.")
    user, password = fields.get("user"), fields.get("password")
    if not user or not password:
        raise Unauthorized("Give a user name and a password.")
    snapshot = svc.snapshot()
    domain_value = fields.get("domain", "default")
    domain = {"id": domain_value} if domain_value in snapshot.domains else {"name": domain_value}
    auth: dict[str, object] = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": user, "domain": domain, "password": password}},
        }
    }
    if project := fields.get("project"):
        auth["scope"] = {"project": {"name": project, "domain": domain}}
    try:
        body = AuthRequest.model_validate({"auth": auth})
    except ValidationError as error:
        raise BadRequest(f"Invalid login: {error.errors()[0]['msg']}.") from error
    return svc.tokens.issue(body.auth, snapshot)


def start_session(request: Request, response: Response, ctx: AuthContext) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        ctx.token_id,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/ui",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/ui")


def log_out(svc: Services, who: Viewer, response: Response) -> None:
    """Revoke the session's token (as ``DELETE /auth/tokens`` does) and drop the cookie."""
    svc.store.revoke(who.ctx.issued_at, audit_id=who.ctx.payload.audit_ids[0])
    response.delete_cookie(SESSION_COOKIE, path="/ui", httponly=True, samesite="strict")
