"""The one driver every part of Cascade uses to talk to a site, emulated or real.

Built on openstacksdk (a ``Connection`` over a keystoneauth1 session per site); no
hand-written HTTP. Nova's quiesce/unquiesce actions, which openstacksdk lacks, are added here
as a ``Server`` subclass, the way openstacksdk resources are extended. Transient failures
(connection errors, 5xx, 409 "in progress") are retried with Cascade's one backoff
(``cascade.retry``) until the call's deadline; anything else, or the last failure, raises
``SiteCallFailed`` naming the site, the call and the reason. A driver given a stop event (a
worker's) makes no attempt once it is set: ``cascade.retry.Interrupted``, not a failure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from openstack import exceptions as sdk_exceptions
from openstack.compute.v2.server import Server
from openstack.connection import Connection

from cascade.errors import CascadeError
from cascade.retry import Backoff, until_deadline
from cascade.sites.waits import stopped_by, until_status

T = TypeVar("T")
IN_PROGRESS_HINTS = ("in progress", "task_state", "while it is in")
SITE_BACKOFF = Backoff(first=0.2, cap=3.0)
DEFAULT_DEADLINE = 30.0  # seconds; the engine uses the setting site_call_deadline


@dataclass(frozen=True)
class SiteAccess:
    """How to reach one site: its identity URL, region and credentials."""

    name: str
    region: str
    auth_url: str
    username: str
    password: str
    project_name: str
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"

    def __repr__(self) -> str:  # never show the password
        return f"SiteAccess({self.name!r}, region={self.region!r}, auth_url={self.auth_url!r})"


class SiteCallFailed(CascadeError):
    """A call to a site failed for good (or kept failing until the deadline)."""

    status = 502

    def __init__(self, site: str, call: str, reason: str, http_status: int | None = None):
        super().__init__(f"site {site}: {call} failed: {reason}")
        self.site = site
        self.call = call
        self.reason = reason
        self.http_status = http_status


class QuiescableServer(Server):
    """openstacksdk's Server with Nova's quiesce and unquiesce actions."""

    def quiesce(self, session: Any) -> None:
        self._action(session, {"quiesce": None})

    def unquiesce(self, session: Any) -> None:
        self._action(session, {"unquiesce": None})


def _http_status(error: BaseException) -> int | None:
    """The HTTP status of an openstacksdk or keystoneauth1 error, if it is one."""
    if isinstance(error, sdk_exceptions.HttpException):
        return error.status_code or 0
    if isinstance(error, ks_exceptions.HttpError):
        return error.http_status or 0
    return None


def is_transient(error: BaseException) -> bool:
    if isinstance(error, ks_exceptions.ConnectFailure | ks_exceptions.ConnectTimeout):
        return True
    status = _http_status(error)
    if status is not None:
        message = str(error).lower()
        return status >= 500 or (
            status == 409 and any(hint in message for hint in IN_PROGRESS_HINTS)
        )
    return isinstance(error, ks_exceptions.RetriableConnectionFailure)


def _describe(error: Exception) -> tuple[str, int | None]:
    status = _http_status(error)
    if isinstance(error, sdk_exceptions.HttpException):
        return f"HTTP {status}: {error.details or error.message}", status
    if status is not None:
        return f"HTTP {status}: {error}", status
    return f"{type(error).__name__}: {error}", None


class SiteDriver:
    def __init__(
        self,
        access: SiteAccess,
        deadline: float = DEFAULT_DEADLINE,
        stop: threading.Event | None = None,
    ) -> None:
        self.access = access
        self.deadline = deadline  # seconds a call keeps retrying transient failures
        self.stop = stop  # once set, no more attempts (the process is stopping)
        auth = v3.Password(
            auth_url=access.auth_url,
            username=access.username,
            password=access.password,
            project_name=access.project_name,
            user_domain_name=access.user_domain_name,
            project_domain_name=access.project_domain_name,
        )
        self.connection = Connection(
            session=ks_session.Session(auth=auth), region_name=access.region
        )

    def call(self, what: str, action: Callable[[Connection], T]) -> T:
        """Run ``action`` against the site, retrying transient failures until the deadline;
        a wait inside it (``cascade.sites.waits``) ends once the driver's stop is set."""

        def attempt() -> T:
            with stopped_by(self.stop):
                return action(self.connection)

        try:
            return until_deadline(
                SITE_BACKOFF,
                self.deadline,
                is_transient,
                attempt,
                self.stop,
            )
        except Exception as error:  # the failure that ended the call; nothing is swallowed
            reason, status = _describe(error)
            raise SiteCallFailed(self.access.name, what, reason, status) from error

    # -- compute ----------------------------------------------------------------------------

    def quiesce(self, server_id: str) -> None:
        self.call(
            f"quiesce server {server_id}",
            lambda c: QuiescableServer.new(id=server_id).quiesce(c.compute),
        )

    def unquiesce(self, server_id: str) -> None:
        self.call(
            f"unquiesce server {server_id}",
            lambda c: QuiescableServer.new(id=server_id).unquiesce(c.compute),
        )

    def wait_for_server(
        self, server_id: str, status: str = "ACTIVE", timeout: float = 120.0
    ) -> Any:
        """The server once it is ``status`` (``waits.until_status``, through ``call``): ERROR
        or a timeout raise SiteCallFailed."""
        return self.call(
            f"wait for server {server_id} to be {status}",
            lambda c: until_status(
                lambda: c.compute.get_server(server_id), status, timeout=timeout
            ),
        )
