"""Password hashing with bcrypt (the cost factor is a setting, default 12 as Keystone), and
generated passwords."""

from __future__ import annotations

import secrets

import bcrypt

# bcrypt reads at most 72 bytes; longer passwords are pre-hashed by nobody, so refuse them.
MAX_PASSWORD_BYTES = 72


def generated_password() -> str:
    """128 random bits in hex: nothing a shell or a command line treats specially (a
    URL-safe token may start with '-', which `--os-password "$P"` takes for an option)."""
    return secrets.token_hex(16)


def hash_password(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def verify_password(password: str, password_hash: str | None) -> bool:
    if password_hash is None:
        return False
    encoded = password.encode()
    if len(encoded) > MAX_PASSWORD_BYTES:
        return False
    return bcrypt.checkpw(encoded, password_hash.encode())
