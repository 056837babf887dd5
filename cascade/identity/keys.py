"""Fernet key repository: owns the key repository on disk; imports stdlib, cryptography,
``cascade.errors`` and ``sealing``'s flush.

Layout is the one ``keystone-manage fernet_setup`` / ``fernet_rotate`` produce, so a
Keystone server and Cascade can share a repository (or copies of it):

* a directory (mode 0700) holding files named by non-negative integers;
* each file holds one urlsafe-base64 Fernet key (mode 0600);
* ``0`` is the staged key (next primary), the highest number is the primary key (it
  encrypts), every other number is a secondary key (decrypt only).

Files whose name is not a plain integer are ignored, as are empty files (Keystone skips
them too). Keys are written to a private temporary file in the same directory and renamed
into place, so readers never see a partial key and no key is ever world-readable.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet

from cascade.errors import Internal
from cascade.identity.sealing import flush

STAGED = 0
_DIR_MODE = 0o700
_MIN_ACTIVE_KEYS = 2


class KeyRepositoryError(Internal):
    """The key repository is missing, empty, inconsistent, or holds a malformed key file."""


class KeyRepository:
    """A Keystone-compatible Fernet key repository directory."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # (version, set id, keys) as last read: re-read only when the directory changes
        self._held: tuple[int, str, dict[int, bytes]] | None = None

    def exists(self) -> bool:
        """True when the directory exists and holds at least one key file."""
        return self.path.is_dir() and bool(self._key_files())

    def setup(self) -> None:
        """Create the repository with staged key 0 and primary key 1, unless keys exist."""
        if self.exists():
            return
        self.write_key(STAGED, Fernet.generate_key())
        self.rotate()

    def rotate(self, max_active_keys: int = 3) -> int:
        """Promote the staged key, stage a new one, purge excess keys; return the new primary.

        ``max_active_keys`` counts the staged key, the primary and the secondaries.
        """
        target = rotated(self.read_all(), max_active_keys)
        self.replace_all(target)
        new_primary = max(target)
        self.stamp(new_primary)
        return new_primary

    def stamp(self, number: int) -> None:
        """Record now as the moment key ``number`` became primary (its file's mtime)."""
        os.utime(self._file(number))

    def primary_since(self, number: int) -> float | None:
        """When key ``number`` became primary (epoch seconds), if its file is here."""
        try:
            return self._file(number).stat().st_mtime
        except FileNotFoundError:
            return None

    def version(self) -> int:
        """Changes whenever a key file is added, replaced or removed: a hash of each key
        file's name, inode and mtime (every write renames a new file into place). Not the
        directory's mtime: file times tick coarsely, so two writes within one tick (a set
        replaced while a reader looked) would leave that reader's copy stale for good."""
        try:
            with os.scandir(self.path) as entries:
                files = sorted(
                    (entry.name, entry.inode(), entry.stat().st_mtime_ns)
                    for entry in entries
                    if _is_key_name(entry.name)
                )
        except FileNotFoundError:
            return 0
        return hash(tuple(files))

    def held(self) -> tuple[str, dict[int, bytes]]:
        """The keys held and their ``key_set_id``, re-read only when the repository changed
        (pollers ask on every poll)."""
        version = self.version()
        if self._held is None or self._held[0] != version:
            keys = self.read_all()
            self._held = (version, key_set_id(keys), keys)
        return self._held[1], dict(self._held[2])

    def set_id(self) -> str:
        """``key_set_id`` of the keys held, re-read only when the repository changed."""
        return self.held()[0]

    def keys(self) -> list[bytes]:
        """All keys in MultiFernet order: primary first, then descending, staged 0 last."""
        found = self.read_all()
        return [found[number] for number in sorted(found, reverse=True)]

    def write_key(self, number: int, key: bytes) -> None:
        """Atomically install ``key`` as key file ``number`` (replacing any existing one)."""
        if number < 0:
            raise ValueError("key number must be a non-negative integer")
        _check_key(key)
        self._ensure_dir()
        os.replace(self._write_temp(key.strip()), self._file(number))
        flush(self.path)

    def read_all(self) -> dict[int, bytes]:
        """Every key in the repository by number; raises if there are none."""
        if not self.path.is_dir():
            raise KeyRepositoryError(f"key repository {self.path} does not exist")
        found = {number: _read_key(path) for number, path in self._key_files().items()}
        keys = {number: key for number, key in found.items() if key}
        if not keys:
            raise KeyRepositoryError(f"key repository {self.path} holds no keys")
        return keys

    def replace_all(self, keys: dict[int, bytes]) -> None:
        """Make the repository hold exactly ``keys`` (a copy of another site's, or a rotated
        set). Keys are written highest number first and before any old one is removed, so a
        reader never finds the repository empty nor a key missing that both sets hold; files
        already holding their key are left alone (their mtime says when they were promoted).
        """
        if not keys:
            raise KeyRepositoryError("refusing to replace the key repository with no keys")
        current = self.read_all() if self.exists() else {}
        for number in sorted(keys, reverse=True):
            if current.get(number) != keys[number].strip():
                self.write_key(number, keys[number])
        for number in set(self._key_files()) - set(keys):
            self._file(number).unlink()

    def _file(self, number: int) -> Path:
        return self.path / str(number)

    def _key_files(self) -> dict[int, Path]:
        try:
            entries = list(self.path.iterdir())
        except FileNotFoundError:
            return {}
        return {int(p.name): p for p in entries if _is_key_name(p.name) and p.is_file()}

    def _ensure_dir(self) -> None:
        self.path.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        if self.path.stat().st_mode & 0o077:
            self.path.chmod(_DIR_MODE)

    def _write_temp(self, key: bytes) -> Path:
        fd, name = tempfile.mkstemp(prefix=".key-", suffix=".tmp", dir=self.path)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(key)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            raise
        return Path(name)


def rotated(keys: dict[int, bytes], max_active_keys: int) -> dict[int, bytes]:
    """The key set ``keystone-manage fernet_rotate`` makes of ``keys``: the staged key becomes
    the primary under the next number, a new key is staged, and the oldest secondaries go so
    that at most ``max_active_keys`` remain (staged and primary included)."""
    if max_active_keys < _MIN_ACTIVE_KEYS:
        raise ValueError(f"max_active_keys must be at least {_MIN_ACTIVE_KEYS}")
    if STAGED not in keys:
        raise KeyRepositoryError("no staged key (file 0) to promote")
    kept = sorted((n for n in keys if n != STAGED), reverse=True)[: max_active_keys - 2]
    new_primary = max(keys) + 1
    return {
        new_primary: keys[STAGED],
        **{number: keys[number] for number in kept},
        STAGED: Fernet.generate_key(),
    }


def key_set_id(keys: dict[int, bytes]) -> str:
    """A short digest naming a key set: equal sets, equal ids; it reveals no key."""
    digest = hashlib.sha256()
    for number in sorted(keys):
        digest.update(b"%d:%s\n" % (number, keys[number].strip()))
    return digest.hexdigest()[:32]


def fingerprint(key: bytes) -> str:
    """A short digest naming one key (never the key itself)."""
    return hashlib.sha256(key.strip()).hexdigest()[:16]


def _is_key_name(name: str) -> bool:
    return name.isascii() and name.isdigit() and str(int(name)) == name


def _check_key(key: bytes) -> None:
    try:
        Fernet(key.strip())
    except (TypeError, ValueError):
        raise ValueError("not a urlsafe-base64 encoded 32-byte Fernet key") from None


def _read_key(path: Path) -> bytes:
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise KeyRepositoryError(f"cannot read key file {path}: {exc.strerror}") from None
    if key:
        try:
            _check_key(key)
        except ValueError:
            raise KeyRepositoryError(f"malformed Fernet key in {path}") from None
    return key
