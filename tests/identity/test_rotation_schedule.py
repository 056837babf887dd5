"""Scheduled key rotation: the workers of ``cascade up --workers 1`` rotate every
``identity_rotate_every`` seconds on the engine's once-per-cluster schedule,
each rotation reaching the replica before it is promoted, and refuses a schedule that would
drop the keys of unexpired tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cascade.cli.embedded import EmbeddedCascade, EmbeddedReplica
from cascade.config import Settings
from cascade.identity.keys import KeyRepository, key_set_id
from tests.identity.test_replica_process import PASSWORD, login, until, validates


@pytest.mark.timeout(120)
def test_the_master_rotates_on_schedule_and_the_replica_keeps_up(tmp_path: Path) -> None:
    env = {
        "CASCADE_PASSWORD_HASH_ROUNDS": "4",
        "CASCADE_IDENTITY_ROTATE_EVERY": "2",
        "CASCADE_TOKEN_EXPIRATION": "60",
        "CASCADE_IDENTITY_MAX_ACTIVE_KEYS": "32",  # 2 s x 30 secondaries covers 60 s tokens
    }
    with (
        EmbeddedCascade(tmp_path / "master", PASSWORD, env=env, workers=1) as master,
        EmbeddedReplica(tmp_path / "replica", master.url, PASSWORD) as replica,
    ):
        admin = login(master.url, "admin", PASSWORD)
        until(lambda: validates(replica.url, admin, admin), timeout=30)
        master_keys = KeyRepository(master.data_dir / "fernet-keys")
        replica_keys = KeyRepository(replica.data_dir / "fernet-keys")
        until(lambda: max(master_keys.read_all()) >= 4, timeout=30)  # three scheduled rotations
        until(lambda: key_set_id(replica_keys.read_all()) == key_set_id(master_keys.read_all()), 5)
        assert validates(replica.url, admin, admin)  # issued before every rotation
        assert validates(replica.url, admin, login(master.url, "admin", PASSWORD))


def test_a_schedule_that_would_drop_live_keys_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="identity_rotate_every"):
        Settings(
            data_dir=tmp_path,
            identity_rotate_every=600,
            identity_max_active_keys=3,
            token_expiration=3600,
        )
    Settings(data_dir=tmp_path, identity_rotate_every=3600, identity_max_active_keys=3)
