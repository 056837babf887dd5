"""Site credentials are encrypted at rest with a Fernet key kept in a 0600 file."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet

from cascade.errors import Internal


class CredentialCipher:
    def __init__(self, key_file: Path) -> None:
        self._key_file = key_file
        self._fernet: Fernet | None = None

    def ensure_key(self) -> None:
        """Create the key file (mode 0600 from the first byte) unless it exists."""
        if self._key_file.exists():
            return
        self._key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(self._key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(Fernet.generate_key())

    def _cipher(self) -> Fernet:
        if self._fernet is None:
            self.ensure_key()
            try:
                self._fernet = Fernet(self._key_file.read_bytes().strip())
            except ValueError as error:
                raise Internal(f"credential key {self._key_file} is not a Fernet key") from error
        return self._fernet

    def check(self) -> None:
        """Raise ``Internal`` naming the key file unless it exists and holds a Fernet key."""
        if not self._key_file.exists():
            raise Internal(f"credential key {self._key_file} does not exist")
        self._cipher()

    def encrypt(self, secret: str) -> bytes:
        return self._cipher().encrypt(secret.encode())

    def decrypt(self, token: bytes) -> str:
        return self._cipher().decrypt(token).decode()
