"""Cascade's HTTP clients for its commands (``cascade demo``, the benchmarks): every call to an
OpenStack API, to Cascade's identity or to its ``/v1`` API goes through a keystoneauth1
session: ``login`` (v3 password or token auth) and ``SessionClient`` (one server's base URL,
the session's token sent, the status checked, failures a ``CascadeError``). ``Client`` is
the small interface a benchmark loop runs through, so the raw client of
``cascade.cli.bench.http`` can stand in where the client library would be what is measured.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from keystoneauth1.identity.base import BaseIdentityPlugin

from cascade.errors import CascadeError, Unauthorized

Expected = int | tuple[int, ...]


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # names looked up in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """What both clients offer: ``request`` (unchecked bytes) and JSON calls on top of it."""

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Reply:
        raise NotImplementedError

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        expect: Expected = 200,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> Reply:
        """A request that must answer ``expect``: ``body`` sent as JSON, or ``data`` as is."""
        if data is None:
            data = b"" if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        reply = self.request(method, path, headers, data)
        if reply.status not in ((expect,) if isinstance(expect, int) else expect):
            raise CascadeError(f"{method} {path} answered {reply.status}: {reply.body[:200]!r}")
        return reply

    def call(self, method: str, path: str, body: Any = None, expect: Expected = 200) -> Any:
        """``send``, then the answer's JSON body (None if it has none)."""
        reply = self.send(method, path, body, expect)
        return reply.json() if reply.body else None

    def close(self) -> None:
        """Close what this client opened (a session given to it stays open)."""


def password_auth_plugin(auth_url: str, password: str, username: str = "admin") -> v3.Password:
    """Keystone v3 password auth for ``username`` on the ``admin`` project, both in the
    default domain (as every bench's and the demo's admin is)."""
    return v3.Password(
        auth_url=auth_url,
        username=username,
        password=password,
        project_name="admin",
        user_domain_id="default",
        project_domain_id="default",
    )


def login(auth: BaseIdentityPlugin) -> ks_session.Session:
    """A keystoneauth1 session for ``auth``, logged in now (a refusal is ``Unauthorized``)."""
    session = ks_session.Session(auth=auth)
    try:
        session.get_token()
    except ks_exceptions.Unauthorized:
        raise Unauthorized(f"login refused at {auth.auth_url}") from None
    except ks_exceptions.ClientException as error:
        raise CascadeError(f"login at {auth.auth_url} failed: {error}") from None
    return session


def rescoped(auth_url: str, token_id: str) -> str:
    """A new token for the same user on the ``admin`` project (Keystone's token method)."""
    auth = v3.Token(
        auth_url=auth_url, token=token_id, project_name="admin", project_domain_id="default"
    )
    return token(login(auth))


def token(session: ks_session.Session) -> str:
    """The session's current token (it logged in when it was made)."""
    found = session.get_token()
    if not found:
        raise CascadeError("the keystoneauth1 session holds no token")
    return found


class SessionClient(Client):
    """One server (``base_url``) through a keystoneauth1 session: its token is sent when it
    has an auth plugin (it logs in again by itself once if the token is refused), and a
    failure to connect is a ``CascadeError``."""

    def __init__(self, session: ks_session.Session, base_url: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")

    def at(self, base_url: str) -> SessionClient:
        """The same session (and token) at another server."""
        return SessionClient(self.session, base_url)

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> Reply:
        try:
            response = self.session.request(
                self.base_url + path,
                method,
                headers=dict(headers or {}),  # a copy: the session adds to what it is given
                data=body or None,
                raise_exc=False,
            )
        except ks_exceptions.ClientException as error:
            raise CascadeError(f"{method} {self.base_url}{path} failed: {error}") from None
        return Reply(response.status_code, response.headers, response.content)
