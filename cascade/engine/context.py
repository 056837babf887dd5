"""What a worker's steps reach: the process's services, one site driver per site, and the
worker's stop event (set once it is stopping: site calls then make no more attempts and the
steps waiting on them are parked, unrecorded, until the process exits)."""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from cascade.engine.services import EngineServices
from cascade.errors import present
from cascade.sites.driver import SiteAccess, SiteDriver
from cascade.sites.registry import SiteRegistry

T = TypeVar("T")


class EngineContext:
    def __init__(self, services: EngineServices, stopping: threading.Event | None = None) -> None:
        self.services = services
        self.db = services.db
        self.settings = services.settings
        self.stopping = stopping or threading.Event()
        self.sites = SiteRegistry(
            services.db, services.credentials, services.settings.effective_public_url
        )
        self._deadline = services.settings.site_call_deadline
        self._drivers: dict[SiteAccess, SiteDriver] = {}
        self._lock = threading.Lock()

    def driver(self, site: str) -> SiteDriver:
        """The driver for a site (name or id), reused while its access stays the same."""
        access = self.sites.access(site)
        with self._lock:
            driver = self._drivers.get(access)
            if driver is None:
                driver = SiteDriver(access, self._deadline, self.stopping)
                self._drivers[access] = driver
            return driver

    def row(self, model: type[T], key: Any, what: str) -> T:
        """The row ``model`` holds under ``key`` (detached), which a step needs to exist."""
        with self.db.session() as session:
            return present(session.get(model, key), what)


def park() -> None:
    """Block this thread until the process exits: a step interrupted by the worker's stop must
    record no outcome (DBOS would replay a recorded failure), so that the worker that resumes
    the workflow runs the step again."""
    threading.Event().wait()


_context: EngineContext | None = None


def install(engine_context: EngineContext) -> None:
    global _context
    _context = engine_context


def context() -> EngineContext:
    if _context is None:
        raise RuntimeError("no engine context: steps run only inside a cascade worker")
    return _context
