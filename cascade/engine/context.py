"""What a worker's steps reach: the process's services and one site driver per site."""

from __future__ import annotations

import threading

from cascade.engine.services import EngineServices
from cascade.sites.driver import SiteAccess, SiteDriver
from cascade.sites.registry import SiteRegistry


class EngineContext:
    def __init__(self, services: EngineServices) -> None:
        self.services = services
        self.db = services.db
        self.settings = services.settings
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
                driver = self._drivers[access] = SiteDriver(access, self._deadline)
            return driver


_context: EngineContext | None = None


def install(engine_context: EngineContext) -> None:
    global _context
    _context = engine_context


def context() -> EngineContext:
    if _context is None:
        raise RuntimeError("no engine context: steps run only inside a cascade worker")
    return _context
