"""Proof that a replica holds a Fernet key set: what a key rotation counts, instead of the
replica's word. Imports only stdlib, cryptography and ``cascade.identity.keys``.

The master issues each replica a **challenge**: a random nonce and the time, bound to the
replica's name and authenticated with a secret only the master's processes hold (derived
from its node key), so the master needs to store nothing and any of its processes can check
it. A challenge travels with every answer that can change what the replica holds or knows
(the snapshot, a key package, each answer of the change log).

The replica answers on its next poll with a **proof**: HMAC-SHA256 over the replica's name,
the id of the key set it claims and the challenge, keyed by a key derived (HKDF-SHA256) from
every key of that set. Only a holder of all the set's keys can compute it (the staged key of
a new set is random and has never been anywhere but sealed for its sites); the set id alone,
which every admin token can read, proves nothing. The master recomputes it with the set it
staged (or its own) and counts the claim only when both the challenge and the proof check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cascade.identity.keys import key_set_id

CHALLENGE_TTL_S = 900  # a challenge older than this proves nothing (a new one comes each poll)
_NONCE_BYTES = 16
_POSSESSION_INFO = b"cascade identity key possession v1"
_PROOF_CONTEXT = b"cascade identity key possession proof v1\n"


def possession_key(keys: dict[int, bytes]) -> bytes:
    """A MAC key only a holder of every key of ``keys`` can derive."""
    material = b"".join(b"%d:%s\n" % (number, keys[number].strip()) for number in sorted(keys))
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_POSSESSION_INFO).derive(
        material
    )


def prove(keys: dict[int, bytes], replica: str, challenge: str) -> str:
    """The proof that ``replica`` holds ``keys``, answering ``challenge`` (hex)."""
    message = b"\n".join(
        (_PROOF_CONTEXT, replica.encode(), key_set_id(keys).encode(), challenge.encode())
    )
    return hmac.new(possession_key(keys), message, hashlib.sha256).hexdigest()


def proves(keys: dict[int, bytes], replica: str, challenge: str, proof: str) -> bool:
    """Whether ``proof`` is ``replica``'s proof of holding ``keys`` for ``challenge``."""
    return hmac.compare_digest(prove(keys, replica, challenge), proof)


class Challenges:
    """Issues and checks challenges with ``secret`` (the master's, the same in each of its
    processes): ``<issued at>.<nonce>.<mac>``, the MAC binding both to the replica's name."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def issue(self, replica: str, now: float | None = None) -> str:
        issued = str(int(time.time() if now is None else now))
        nonce = base64.urlsafe_b64encode(os.urandom(_NONCE_BYTES)).decode().rstrip("=")
        return f"{issued}.{nonce}.{self._mac(replica, issued, nonce)}"

    def valid(self, replica: str, challenge: str, now: float | None = None) -> bool:
        """Issued by this master, for ``replica``, less than ``CHALLENGE_TTL_S`` ago."""
        parts = challenge.split(".")
        if len(parts) != 3 or not (parts[0].isascii() and parts[0].isdigit()) or len(parts[0]) > 12:
            return False
        issued, nonce, mac = parts
        if not hmac.compare_digest(self._mac(replica, issued, nonce), mac):
            return False
        age = (time.time() if now is None else now) - int(issued)
        return -60 <= age <= CHALLENGE_TTL_S  # a minute of clock skew between processes

    def _mac(self, replica: str, issued: str, nonce: str) -> str:
        message = f"challenge\n{replica}\n{issued}\n{nonce}".encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
