"""The running services of one Cascade process, built once from the settings.

The API, the CLI and the tests all reach the database, the identity read model and the token
service through this object, so there is one instance of each per process.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property

from cascade.config import Settings
from cascade.db import Database
from cascade.db.migrate import upgrade
from cascade.engine import queue
from cascade.engine.operations import Operations
from cascade.fabric.goal import GoalStore
from cascade.identity import changelog, rotation
from cascade.identity.bootstrap import BootstrapResult, bootstrap
from cascade.identity.keys import KeyRepository
from cascade.identity.master import ReplicationMaster
from cascade.identity.sealing import NodeKey
from cascade.identity.snapshot import IdentityCache, IdentitySnapshot
from cascade.identity.store import IdentityStore
from cascade.identity.token_format import TokenFormatter
from cascade.identity.tokens import AuthContext, TokenService
from cascade.sites.credentials import CredentialCipher


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.effective_database_url)
        changelog.attach(self.db)  # every identity write is logged for the replicas
        self.keys = KeyRepository(settings.key_repository)
        self.staged_keys = KeyRepository(settings.staged_key_repository)

    @cached_property
    def identity(self) -> IdentityCache:
        return IdentityCache(self.db, self.settings.identity_refresh_interval)

    @cached_property
    def store(self) -> IdentityStore:
        return IdentityStore(
            self.db, self.settings.password_hash_rounds, self.settings.identity_master_url
        )

    @cached_property
    def tokens(self) -> TokenService:
        formatter = TokenFormatter(self.keys)
        lifetime = timedelta(seconds=self.settings.token_expiration)
        return TokenService(formatter, lifetime, follow=self.keys)

    @cached_property
    def node_key(self) -> NodeKey:
        """This node's X25519 key pair: key material to or from other sites is sealed with it."""
        return NodeKey(self.settings.data_dir / "node-key")

    @cached_property
    def credentials(self) -> CredentialCipher:
        return CredentialCipher(self.settings.data_dir / "credential.key")

    @cached_property
    def queue(self) -> queue.OperationQueue:
        return queue.OperationQueue(self.db)

    @cached_property
    def operations(self) -> Operations:
        return Operations(self.db, self.queue)

    @cached_property
    def fabric(self) -> GoalStore:
        """The network fabric's goal state: hosts, networks, ports and their revisions."""
        return GoalStore(self.db)

    @cached_property
    def replication_master(self) -> ReplicationMaster:
        """The master's side of identity replication: what replicas pull."""
        return ReplicationMaster(self.db, self.keys, self.staged_keys, self.node_key)

    def key_rotation(self, max_active_keys: int | None = None) -> rotation.KeyRotation:
        return rotation.KeyRotation(
            self.db,
            self.keys,
            self.staged_keys,
            max_active_keys or self.settings.identity_max_active_keys,
            timedelta(seconds=self.settings.token_expiration),
        )

    def snapshot(self) -> IdentitySnapshot:
        return self.identity.current()

    def check_token(self, token_id: str) -> AuthContext:
        """Validate a token against the current identity data (raises TokenError)."""
        return self.tokens.validate(token_id, self.snapshot())

    def close(self) -> None:
        if "queue" in self.__dict__:
            self.queue.close()
        self.db.dispose()


def initialize(services: Services, admin_password: str | None) -> BootstrapResult:
    """Create the data dir (0700), migrate, create the key repositories, bootstrap the admin.

    Safe to run again: nothing that exists is changed (the admin password included).
    """
    settings = services.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    upgrade(services.db)
    queue.prepare(services.db, settings)
    services.keys.setup()
    services.credentials.ensure_key()
    return bootstrap(
        services.db,
        admin_password,
        settings.effective_public_url,
        settings.region,
        settings.password_hash_rounds,
    )
