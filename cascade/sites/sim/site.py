"""One emulated region: its configuration, its state, its identity copy, its hosts, its faults."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cascade.config import Settings
from cascade.services import Services, initialize
from cascade.sites.sim.catalog import register_services
from cascade.sites.sim.faults import Faults
from cascade.sites.sim.state import SimState


@dataclass(frozen=True)
class Host:
    """A simulated compute host and the tunnel endpoint its VXLAN traffic would use."""

    name: str
    tunnel_ip: str


@dataclass
class SiteConfig:
    name: str
    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    region: str | None = None
    hosts: int = 4
    admin_password: str | None = None
    build_seconds: float = 1.0
    password_hash_rounds: int = 12
    tunnel_network: str | None = None
    backup_dir: Path | None = None  # shared with other sites so a backup restores anywhere

    @property
    def region_name(self) -> str:
        return self.region or self.name

    @property
    def backup_store(self) -> Path:
        return self.backup_dir or self.data_dir / "backup-store"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


class Site:
    def __init__(self, config: SiteConfig, faults: Faults | None = None) -> None:
        self.config = config
        self.state = SimState(config.data_dir)
        self.faults = faults or Faults()
        self.identity = Services(
            Settings(
                data_dir=config.data_dir / "identity",
                database_url=f"sqlite:///{(config.data_dir / 'identity' / 'cascade.db').resolve()}",
                host=config.host,
                port=config.port,
                region=config.region_name,
                password_hash_rounds=config.password_hash_rounds,
            )
        )

    def bootstrap(self) -> None:
        """Create the site's identity copy (admin user, Fernet keys) and its catalog."""
        password = self.config.admin_password or self.stored_password()
        initialize(self.identity, password)
        register_services(self.identity, self.config.region_name, self.config.base_url)

    def stored_password(self) -> str:
        """The site admin's password, generated once and kept in a 0600 file of the data dir."""
        path = self.config.data_dir / "admin-password"
        if not path.exists():
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(16))
        return path.read_text().strip()

    @cached_property
    def hosts(self) -> list[Host]:
        network = ipaddress.ip_network(self.config.tunnel_network or self._default_tunnel_net())
        addresses = network.hosts()
        return [
            Host(f"{self.config.name}-host-{i}", str(next(addresses)))
            for i in range(1, self.config.hosts + 1)
        ]

    def _default_tunnel_net(self) -> str:
        """198.18.0.0/15 is reserved for benchmarking; each site gets a /24 of it by name."""
        octet = hashlib.sha256(self.config.name.encode()).digest()[0]
        return f"198.18.{octet}.0/24"

    def close(self) -> None:
        self.state.close()
        self.identity.close()
