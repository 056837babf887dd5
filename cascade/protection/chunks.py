"""What a backup chunk is called and how its bytes are checked (issue 16's chunk store).

A chunk is named by the SHA-256 hex of its bytes (``chunk_name``), which is also its
integrity digest: manifests keep it beside the name (``[name, sha256]``), the store verifies
it on every read, and the site's block-data service computes the same digest per block, which
a restored volume is verified against. One cryptographic hash: a tenant cannot craft a block
with another's name to poison deduplication across volumes, and a block is hashed once. A
``Chunk`` is bytes with their name, computed once (``Chunk.of``): what a backup claims and the
store puts, never hashed again on the way. An all-zero block is no chunk (``is_zero``).
``hash_rates`` measures SHA-256 against BLAKE3 and xxh3 on this machine (for ``cascade bench
protect``; docs/decisions.md has the figures behind the choice). Imports only the standard
library, blake3 and xxhash.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import blake3
import xxhash

NAME_LENGTH = 64  # hex digits of a SHA-256 digest
MIB = 1024 * 1024


def chunk_name(data: bytes) -> str:
    """The chunk's identity and integrity digest: the SHA-256 hex of its bytes."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Chunk:
    """A chunk's bytes and their name; made by ``Chunk.of`` only, so the name is the
    bytes' digest."""

    data: bytes
    name: str

    @classmethod
    def of(cls, data: bytes) -> Chunk:
        return cls(data, chunk_name(data))

    @property
    def sha256(self) -> str:
        """The integrity digest a manifest and a claim record: the name itself (a chunk of
        a checkpoint made before 2026-12-07 has a BLAKE3 name and a separate SHA-256)."""
        return self.name


@lru_cache(maxsize=4)
def _zeros(size: int) -> bytes:
    return bytes(size)


def is_zero(data: bytes) -> bool:
    """All zero bytes: compared with a kept zero block (stops at the first non-zero byte,
    copies nothing)."""
    return data == _zeros(len(data))


def is_chunk_name(name: str) -> bool:
    return len(name) == NAME_LENGTH and all(c in "0123456789abcdef" for c in name)


HASHES: dict[str, Callable[[bytes], str]] = {
    "blake3": lambda data: blake3.blake3(data).hexdigest(),
    "xxh3_128": xxhash.xxh3_128_hexdigest,
    "sha256": chunk_name,
}


def hash_rates(mb: int, rounds: int = 3) -> dict[str, float]:
    """MB/s (MiB per second) of each candidate hash over ``mb`` MiB of random bytes on this
    machine, one thread each; the best of ``rounds`` passes."""
    data = os.urandom(mb * MIB)
    rates: dict[str, float] = {}
    for label, digest in HASHES.items():
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            digest(data)
            best = min(best, time.perf_counter() - started)
        rates[label] = mb / max(best, 1e-9)
    return rates
