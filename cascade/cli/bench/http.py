"""The HTTP clients of the benchmarks and of ``cascade demo``, latency statistics, and rates
measured in-process for baselines.

Every call to an OpenStack API, to Cascade's identity or to its ``/v1`` API goes through a
keystoneauth1 session: ``login`` (v3 password or token auth) and ``SessionClient`` (one
server's base URL, the session's token sent, the status checked). ``KeepAliveConnection`` is
a minimal raw keep-alive HTTP/1.1 client kept for exactly the loops whose rate is the
measurement and which keystoneauth1 would cap well below what the server does: token
validation and token-method issue (``RAW_LOOPS``; figures in docs/benchmarks.md, "Benchmark
HTTP clients", from ``cascade bench clients``). Both clients offer the same ``request`` and
``call``, so a loop runs unchanged through either.
"""

from __future__ import annotations

import json
import socket
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from keystoneauth1.identity.base import BaseIdentityPlugin

from cascade.errors import CascadeError, Unauthorized

# Loops timed through KeepAliveConnection: through keystoneauth1 they would run at well under
# the server's rate (``cascade bench clients``). Every other call goes through keystoneauth1.
RAW_LOOPS = frozenset({"validate", "rescope"})
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


class KeepAliveConnection(Client):
    """A raw keep-alive HTTP/1.1 connection to 127.0.0.1, kept for the ``RAW_LOOPS`` only:
    it writes a request in one piece and parses the answer's head by hand. keystoneauth1 plus
    requests adds ~0.7 ms a request on this machine, as much as Cascade takes to validate a
    token, so through it those loops would time the client library (``cascade bench
    clients``). Only for servers that write an answer in one piece, as uvicorn does: against
    one that writes the head and the body apart (Keystone under ``wsgiref``) every request
    waits for a delayed ACK (~40 ms). ``token``, if given, is sent as ``X-Auth-Token`` unless
    a request names its own."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self._socket = socket.create_connection(("127.0.0.1", port), timeout=120)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""
        self._token = token

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Reply:
        sent = {"X-Auth-Token": self._token} if self._token else {}
        sent.update(headers or {})
        lines = [
            f"{method} {path} HTTP/1.1",
            "Host: 127.0.0.1",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in sent.items()),
        ]
        self._socket.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self._receive()
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        reply_headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            reply_headers[name.strip().lower()] = value.strip()
        length = 0 if method == "HEAD" else int(reply_headers.get("content-length", "0"))
        while len(rest) < length:
            rest += self._receive()
        self._buffer = rest[length:]
        return Reply(int(status_line[9:12]), reply_headers, rest[:length])

    def _receive(self) -> bytes:
        chunk = self._socket.recv(1 << 20)
        if not chunk:
            raise CascadeError("the server closed the connection")
        return chunk

    def close(self) -> None:
        self._socket.close()


def connect(port: int, raw: bool) -> Client:
    """One keep-alive connection to the server on 127.0.0.1:``port``: the raw client, or
    keystoneauth1 (a session without auth: requests carry their own tokens, so both clients
    send the same bytes but for the User-Agent)."""
    if raw:
        return KeepAliveConnection(port)
    return SessionClient(ks_session.Session(), f"http://127.0.0.1:{port}")


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100)[q - 1]


def per_second(action: Callable[[], object], seconds: float) -> float:
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        action()
        count += 1
    return count / (time.perf_counter() - started)
