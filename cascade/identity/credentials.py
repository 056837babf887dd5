"""Credentials (Keystone's ``/v3/credentials``, and EC2 keys stored as ``ec2`` credentials):
their blobs encrypted at rest with a Fernet key repository of their own, as Keystone's
credential provider does (``keystone-manage credential_setup``: ``credential-keys`` beside
the token keys, the same layout and ``KeyRepository``, never the same keys).

A row holds the encrypted blob and ``key_hash``, the fingerprint of the primary key that
encrypted it; every key of the repository decrypts. Writes go through the identity store
(one transaction with the revision bump, refused at a replica, logged for replicas); reads
come from the database, not the snapshot (tokens never need them). Credential keys are not
distributed: a replica holds the encrypted rows but no key, and answers reads with 503.

Imports ``cascade.db`` and the identity store and key repository.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select

from cascade.db import Database
from cascade.db.models import Credential
from cascade.errors import BadRequest, NotFound, Unavailable
from cascade.identity.keys import KeyRepository, fingerprint
from cascade.identity.kinds import CREDENTIAL
from cascade.identity.store import IdentityStore

CREDENTIAL_KEYS = "credential-keys"  # under the data dir, as Keystone's credential-keys
EC2 = "ec2"


def ec2_id(access: str) -> str:
    """The id Keystone gives an ``ec2`` credential: the SHA-256 of its access key."""
    return hashlib.sha256(access.encode()).hexdigest()


class BlobCipher:
    """Encrypts and decrypts blobs with the credential key repository (made on first use)."""

    def __init__(self, keys: KeyRepository) -> None:
        self.keys = keys
        self._lock = threading.Lock()
        self._held: tuple[int, MultiFernet, str] | None = None  # version, crypto, key hash

    def encrypt(self, blob: str) -> tuple[str, str]:
        """(encrypted blob, hash of the key that encrypted it); makes the keys if none."""
        if not self.keys.exists():
            self._setup()
        crypto, key_hash = self._crypto()
        return crypto.encrypt(blob.encode()).decode("ascii"), key_hash

    def decrypt(self, encrypted: str) -> str:
        if not self.keys.exists():
            raise Unavailable(
                "This site holds no credential keys (a replica's copy of the credentials "
                "stays encrypted): read credentials at the identity master."
            )
        crypto, _ = self._crypto()
        try:
            return crypto.decrypt(encrypted.encode("ascii")).decode()
        except InvalidToken:
            raise Unavailable(
                "A credential was encrypted with a key this site's credential key "
                "repository does not hold."
            ) from None

    def _crypto(self) -> tuple[MultiFernet, str]:
        version = self.keys.version()
        with self._lock:
            if self._held is None or self._held[0] != version:
                keys = self.keys.keys()  # primary first
                crypto = MultiFernet([Fernet(key) for key in keys])
                self._held = (version, crypto, fingerprint(keys[0]))
            return self._held[1], self._held[2]

    def _setup(self) -> None:
        """``credential_setup``, once, however many processes try at the same moment."""
        self.keys.path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(self.keys.path.with_name(self.keys.path.name + ".lock")):
            self.keys.setup()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ec2_blob(blob: str) -> dict[str, Any]:
    """An ``ec2`` credential's blob: JSON with an ``access`` key (400 otherwise)."""
    try:
        found = json.loads(blob)
    except ValueError:
        found = None
    if not isinstance(found, dict) or not isinstance(found.get("access"), str):
        raise BadRequest("An ec2 credential's blob must be JSON with an 'access' key.")
    return found


class Credentials:
    """Create, read, change and delete credentials; blobs in clear only in memory."""

    def __init__(self, db: Database, store: IdentityStore, keys: KeyRepository) -> None:
        self._db = db
        self._store = store
        self.cipher = BlobCipher(keys)

    def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        """A new credential from ``fields`` (``user_id``, ``type``, ``blob``, optional
        ``project_id``, ``id`` and ``extra``); an ``ec2`` one gets Keystone's id."""
        fields = dict(fields)
        if fields["type"] == EC2:
            if not fields.get("project_id"):
                raise BadRequest("An ec2 credential needs a project_id.")
            wanted = ec2_id(ec2_blob(fields["blob"])["access"])
            if fields.get("id") not in (None, wanted):
                raise BadRequest("An ec2 credential's id is the SHA-256 of its access key.")
            fields["id"] = wanted
        elif fields.get("id") is None:
            fields.pop("id", None)
        row = self._store.create(CREDENTIAL, self._sealed(fields))
        return self._opened(row)

    def update(self, credential_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        current = self.get(credential_id)
        merged = {**current, **fields}
        if merged["type"] == EC2:
            if not merged.get("project_id"):
                raise BadRequest("An ec2 credential needs a project_id.")
            ec2_blob(merged["blob"])
        row = self._store.update(CREDENTIAL, credential_id, self._sealed(fields))
        return self._opened(row)

    def delete(self, credential_id: str) -> None:
        self._store.delete(CREDENTIAL, credential_id)

    def get(self, credential_id: str) -> dict[str, Any]:
        with self._db.session() as session:
            row = session.get(Credential, credential_id)
            if row is None:
                raise NotFound(f"Could not find credential: {credential_id}.")
            return self._opened(row)

    def find(self, user_id: str | None = None, type_: str | None = None) -> list[dict[str, Any]]:
        """Every credential, of ``user_id`` and of ``type_`` when given."""
        query = select(Credential).order_by(Credential.id)
        if user_id is not None:
            query = query.where(Credential.user_id == user_id)
        if type_ is not None:
            query = query.where(Credential.type == type_)
        with self._db.session() as session:
            return [self._opened(row) for row in session.scalars(query)]

    def _sealed(self, fields: dict[str, Any]) -> dict[str, Any]:
        if "blob" not in fields:
            return fields
        sealed = {k: v for k, v in fields.items() if k != "blob"}
        sealed["encrypted_blob"], sealed["key_hash"] = self.cipher.encrypt(fields["blob"])
        return sealed

    def _opened(self, row: Credential) -> dict[str, Any]:
        return {
            "id": row.id,
            "user_id": row.user_id,
            "project_id": row.project_id,
            "type": row.type,
            "blob": self.cipher.decrypt(row.encrypted_blob),
            "extra": dict(row.extra or {}),
        }
