"""One process's identity, built once from the settings: the database (every identity write
logged for replicas), the Fernet key repositories, the read model, the store, the token
service, the node key, the feed replicas pull from a master, and key rotation.

Cascade's own process builds on it (``cascade.services.Services`` adds the engine, the fabric
and site credentials); an emulated region (``cascade_sim``) uses it alone for its Keystone.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from functools import cached_property

from sqlalchemy import delete

from cascade.config import Settings
from cascade.db import Database
from cascade.db.migrate import upgrade
from cascade.db.models import ReplicaState
from cascade.identity import changelog, rotation
from cascade.identity.bootstrap import BootstrapResult, bootstrap, ensure_endpoints
from cascade.identity.credentials import CREDENTIAL_KEYS, Credentials
from cascade.identity.keys import KeyRepository
from cascade.identity.master import ReplicaFeed
from cascade.identity.sealing import NodeKey
from cascade.identity.snapshot import IdentityCache, IdentitySnapshot
from cascade.identity.store import IdentityStore, bump_revision
from cascade.identity.token_format import TokenFormatter
from cascade.identity.tokens import AuthContext, TokenService

# (catalog type, service name, URL)
Endpoint = tuple[str, str, str]


class IdentityServices:
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
    def user_credentials(self) -> Credentials:
        """Users' credentials (``/v3/credentials``), encrypted with their own key repository."""
        return Credentials(
            self.db, self.store, KeyRepository(self.settings.data_dir / CREDENTIAL_KEYS)
        )

    @cached_property
    def tokens(self) -> TokenService:
        formatter = TokenFormatter(self.keys)
        lifetime = timedelta(seconds=self.settings.token_expiration)
        return TokenService(formatter, lifetime, self.db, watch_keys=self.keys)

    @cached_property
    def node_key(self) -> NodeKey:
        """This node's X25519 key pair: key material to or from other sites is sealed with it."""
        return NodeKey(self.settings.data_dir / "node-key")

    @cached_property
    def replica_feed(self) -> ReplicaFeed:
        """The master's side of identity replication: what replicas pull."""
        return ReplicaFeed(self.db, self.keys, self.staged_keys, self.node_key)

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

    def list_endpoints(self, region: str, endpoints: Iterable[Endpoint]) -> None:
        """Make the catalog list ``endpoints`` (public, internal, admin) in ``region``."""
        with self.db.session() as session:
            bump_revision(session)
            for service_type, name, url in endpoints:
                ensure_endpoints(session, region, service_type, name, url)

    def forget_master_position(self) -> None:
        """Make this replica start over from a master's snapshot at its next sync."""
        with self.db.session() as session:
            session.execute(delete(ReplicaState))

    def close(self) -> None:
        self.db.dispose()


def initialize_identity(services: IdentityServices, admin_password: str | None) -> BootstrapResult:
    """Create the data dir (0700), migrate, create the key repository, bootstrap the admin.

    Safe to run again: nothing that exists is changed (the admin password included).
    """
    settings = services.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    upgrade(services.db)
    services.keys.setup()
    return bootstrap(
        services.db,
        admin_password,
        settings.effective_public_url,
        settings.region,
        settings.password_hash_rounds,
    )
