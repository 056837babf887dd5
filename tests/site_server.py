"""An emulated region served over real HTTP from a thread of the test process: what the site
driver (keystoneauth1/openstacksdk) needs to reach, without a child process. Tests that kill
a site use ``cascade.cli.embedded.EmbeddedSite`` instead."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from cascade.cli.embedded import free_port
from cascade_sim.app import create_region_app
from tests.sim.conftest import SITE_ADMIN_PASSWORD, make_site


class ThreadedSite:
    def __init__(self, data_dir: Path, name: str, region: str | None = None) -> None:
        self.name = name
        self.port = free_port()
        self.region = make_site(data_dir, name=name, port=self.port, region=region)
        self.url = self.region.config.base_url
        config = uvicorn.Config(
            create_region_app(self.region),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"site {name}", daemon=True)

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity/v3"

    @property
    def region_name(self) -> str:
        return self.region.config.region_name

    def spec(self, password: str = SITE_ADMIN_PASSWORD, **extra: Any) -> dict[str, Any]:
        """The POST /v1/sites body registering this site as its admin."""
        return {
            "name": self.name,
            "region_name": self.region_name,
            "identity_url": self.auth_url,
            "credentials": {"username": "admin", "password": password, "project_name": "admin"},
            **extra,
        }

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"site {self.name} did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


@contextmanager
def threaded_site(data_dir: Path, name: str, region: str | None = None) -> Iterator[ThreadedSite]:
    """A started ``ThreadedSite``, stopped on exit (even on failure)."""
    site = ThreadedSite(data_dir, name, region)
    site.start()
    try:
        yield site
    finally:
        site.stop()
