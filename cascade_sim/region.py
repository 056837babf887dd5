"""One emulated region: its configuration, its state, its identity copy, its hosts, its faults."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

from cascade.config import HASH_ROUNDS, Settings
from cascade.identity import (
    Follower,
    Following,
    IdentityServices,
    Master,
    generated_password,
    initialize_identity,
    write_private,
)
from cascade_sim.catalog import register_services
from cascade_sim.faults import Faults, MasterLink
from cascade_sim.state import SimState


@dataclass(frozen=True)
class Host:
    """A simulated compute host and the tunnel endpoint its VXLAN traffic would use."""

    name: str
    tunnel_ip: str


@dataclass
class RegionConfig:
    name: str
    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    region: str | None = None
    hosts: int = 4
    admin_password: str | None = None
    build_seconds: float = 1.0
    password_hash_rounds: int = HASH_ROUNDS
    tunnel_network: str | None = None
    backup_dir: Path | None = None  # shared with other sites so a backup restores anywhere
    dataplane: str = "memory"  # what the compute hosts' agents program: memory or linux
    underlay: str | None = None  # NETNS/BRIDGE the linux host namespaces are plugged into
    image_quota_mib: int | None = None  # MiB each project's images may total (None: no limit)

    @property
    def region_name(self) -> str:
        return self.region or self.name

    @property
    def backup_store(self) -> Path:
        return self.backup_dir or self.data_dir / "backup-store"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


class Region:
    def __init__(self, config: RegionConfig, faults: Faults | None = None) -> None:
        self.config = config
        self.state = SimState(config.data_dir)
        self.faults = faults or Faults()
        self.identity = IdentityServices(
            Settings(
                data_dir=config.data_dir / "identity",
                database_url=f"sqlite:///{(config.data_dir / 'identity' / 'cascade.db').resolve()}",
                host=config.host,
                port=config.port,
                region=config.region_name,
                password_hash_rounds=config.password_hash_rounds,
            )
        )
        self._following: Following | None = None

    def bootstrap(self) -> None:
        """Create the site's identity copy (admin user, Fernet keys) and its catalog, unless
        the site follows a master's identity (then its copy is the master's)."""
        password = self.config.admin_password or self.stored_password()
        if self._master_file.exists():
            initialize_identity(self.identity, None)  # migrations only: the rows are the master's
            return
        initialize_identity(self.identity, password)
        register_services(self.identity, self.config.region_name, self.config.base_url)

    # -- following a master's identity -----------------------------------------------------

    @property
    def _master_file(self) -> Path:
        return self.config.data_dir / "identity-master.json"

    def follow(self, master: Master, name: str) -> int:
        """Replace this site's identity by ``master``'s (bootstrap now, so a failure is the
        caller's answer), then follow its change log and key sets in a thread; remembered
        (0600) across restarts. Returns the change log position reached."""
        self.stop_following()
        self.identity.forget_master_position()  # start over from the master's snapshot
        follower = self._follower(master, name)
        follower.sync()
        saved = {"master": asdict(master), "name": name}
        write_private(self._master_file, json.dumps(saved).encode())
        self.identity.store.become_replica_of(master.url)  # identity writes go to the master now
        self._following = Following(follower)
        position = follower.position()
        return position.seq if position else 0

    def resume_following(self) -> None:
        """Follow the master this site followed before it stopped, if any."""
        if self._master_file.exists() and self._following is None:
            saved = json.loads(self._master_file.read_text())
            master = Master(**saved["master"])
            self.identity.store.become_replica_of(master.url)
            self._following = Following(self._follower(master, saved["name"]))

    def stop_following(self) -> None:
        if self._following is not None:
            self._following.stop()
            self._following = None

    def _follower(self, master: Master, name: str) -> Follower:
        identity = self.identity
        return Follower(
            identity.db,
            identity.keys,
            identity.node_key,
            master,
            name,
            on_keys=identity.tokens.reload_keys,
            link=MasterLink(self.faults),
        )

    def stored_password(self) -> str:
        """The site admin's password, generated once and kept in a 0600 file of the data dir."""
        path = self.config.data_dir / "admin-password"
        if not path.exists():
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(generated_password())
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
        self.stop_following()
        self.state.close()
        self.identity.close()
