"""Key material in transit between the identity master and a site: sealed, i.e. encrypted and
authenticated for exactly one recipient; also the private-file write and the flush other
modules' files use. Imports only stdlib and cryptography.

Every node (the master, each replica, each site-sim) holds an X25519 key pair in a 0600 file
of its data directory. The master and a site exchange public keys when the site registers
(over the admin-authenticated API). A sealed bundle is a Fernet token (AES-CBC + HMAC-SHA256)
under a key derived with HKDF-SHA256 from their shared X25519 secret and the recipient's
public key:
only that site can open it, only the master could have made it, and a bundle older than
``MAX_AGE_S`` is refused so an old key set cannot be replayed. Key material never appears
in a response in any other form, nor in a log.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cascade.errors import BadRequest

MAX_AGE_S = 300
_RAW = serialization.Encoding.Raw
_INFO = b"cascade identity key bundle v1 for "
_SECRET_INFO = b"cascade node secret v1 for "


class SealError(BadRequest):
    """A bundle that cannot be opened: wrong peer, tampered with, too old, or malformed."""


class NodeKey:
    """This node's X25519 key pair, kept in a 0600 file (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._private = self._load_or_create()

    @property
    def public(self) -> str:
        """The public key, urlsafe base64: what the peer is told."""
        raw = self._private.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
        return base64.urlsafe_b64encode(raw).decode()

    def seal(self, recipient: str, keys: dict[int, bytes]) -> str:
        """Seal ``keys`` for the node whose public key is ``recipient``."""
        body = json.dumps({"keys": {str(n): k.decode() for n, k in keys.items()}})
        return self._fernet(recipient, recipient).encrypt(body.encode()).decode()

    def unseal(self, sender: str, bundle: str) -> dict[int, bytes]:
        """Open a bundle the node whose public key is ``sender`` sealed for this node."""
        try:
            body = self._fernet(sender, self.public).decrypt(bundle, ttl=MAX_AGE_S)
            keys = json.loads(body)["keys"]
            return {int(number): key.encode() for number, key in keys.items()}
        except InvalidToken:
            raise SealError(
                "the key bundle does not open: not sealed by the expected master for this "
                f"site, tampered with, or older than {MAX_AGE_S} s"
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise SealError(f"malformed key bundle: {type(error).__name__}") from None

    def secret(self, purpose: str) -> bytes:
        """A 32-byte secret derived from this node's private key for ``purpose``: the same in
        every process sharing the key file, known to no other node."""
        raw = self._private.private_bytes(
            _RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        info = _SECRET_INFO + purpose.encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(raw)

    def _fernet(self, peer_public: str, recipient: str) -> Fernet:
        """The key only this node and the peer can derive, bound to the recipient's key."""
        try:
            peer = X25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(peer_public))
        except ValueError:
            raise SealError("malformed peer public key") from None
        shared = self._private.exchange(peer)
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO + recipient.encode()
        ).derive(shared)
        return Fernet(base64.urlsafe_b64encode(derived))

    def _load_or_create(self) -> X25519PrivateKey:
        if self.path.exists():
            return X25519PrivateKey.from_private_bytes(base64.b64decode(self.path.read_bytes()))
        private = X25519PrivateKey.generate()
        raw = private.private_bytes(
            _RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        write_private(self.path, base64.b64encode(raw))
        return private


def flush(path: Path) -> None:
    """Make a file's or a directory's contents durable (``os.fsync``); for a directory, the
    names made or renamed in it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path`` as a 0600 file (never readable by others),
    fsynced before the rename (the rename's durability is the directory's: ``flush`` it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise
