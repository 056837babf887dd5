"""Faults injected on demand: latency per service, an error rate per route, the whole site
answering 503, a named server that fails to quiesce, a backup that fails midway, block reads
of the block-data service that fail after a count, the site cut off from the identity master
it follows. Turning a fault off restores normal service; state
is never touched. (An outage in which the site
refuses connections is the listener's: ``cascade_sim.listener``.)"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.exceptions import ConnectionError as RequestsConnectionError
from starlette.types import ASGIApp, Receive, Scope, Send

from cascade_sim.errors import render, service_of


@dataclass
class RouteErrors:
    method: str  # "*" for any
    path_prefix: str
    rate: float  # 0..1
    status: int = 500


@dataclass
class Faults:
    latency: dict[str, float] = field(default_factory=dict)  # service -> seconds
    route_errors: list[RouteErrors] = field(default_factory=list)
    unavailable: bool = False  # every service answers 503
    quiesce_failures: set[str] = field(default_factory=set)  # server ids or names
    backup_failure_at: float | None = None  # fraction of the next backup at which it fails
    block_read_failures_after: int | None = None  # block reads that succeed before all fail
    cut_from_master: bool = False  # the link to the identity master is down

    def clear(self) -> None:
        self.latency.clear()
        self.route_errors.clear()
        self.unavailable = False
        self.quiesce_failures.clear()
        self.backup_failure_at = None
        self.block_read_failures_after = None
        self.cut_from_master = False

    def block_read_fails(self) -> bool:
        """Whether this block read fails (counting it down; the caller serialises reads)."""
        remaining = self.block_read_failures_after
        if remaining is None:
            return False
        if remaining > 0:
            self.block_read_failures_after = remaining - 1
        return remaining == 0

    def error_for(self, method: str, path: str) -> int | None:
        for rule in self.route_errors:
            applies = rule.method in ("*", method) and path.startswith(rule.path_prefix)
            if applies and random.random() < rule.rate:
                return rule.status
        return None


class MasterLink(HTTPAdapter):
    """The site's outbound link to its identity master (mounted on the follower's session):
    while ``cut_from_master`` holds, requests fail to connect and answers still in flight
    are lost, as on a cut fibre."""

    def __init__(self, faults: Faults) -> None:
        super().__init__()
        self.faults = faults

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        self._check(request)
        response = super().send(request, *args, **kwargs)
        try:
            self._check(request)
        except RequestsConnectionError:
            response.close()
            raise
        return response

    def _check(self, request: PreparedRequest) -> None:
        if self.faults.cut_from_master:
            raise RequestsConnectionError("the link to the identity master is cut", request=request)


class FaultInjection:
    """ASGI middleware applying latency and injected errors; ``/sim`` is never faulted."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/sim/"):
            await self.app(scope, receive, send)
            return
        service = service_of(scope["path"])
        delay = self.faults.latency.get(service) or self.faults.latency.get("*")
        if delay:
            await asyncio.sleep(delay)
        status = (
            503
            if self.faults.unavailable
            else self.faults.error_for(scope["method"], scope["path"])
        )
        if status is None:
            await self.app(scope, receive, send)
            return
        body = render(service, status, f"injected fault: {status} on {scope['path']}")
        await JSONResponse(body, status_code=status)(scope, receive, send)
