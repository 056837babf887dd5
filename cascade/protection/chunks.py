"""What a backup chunk is called and how its bytes are checked (issue 16's chunk store).

A chunk's identity is the BLAKE3-256 hex of its bytes (``chunk_name``): cryptographic, so a
tenant cannot craft two blocks with one name and poison deduplication across volumes; its
integrity digest is SHA-256 (``sha256_hex``), which the caller keeps in its manifest and the
store verifies on every read. A ``Chunk`` is bytes with both digests, computed once from
them in one pass (``digests``, ``Chunk.of``): what a backup claims and the store puts,
never hashed again on the way. An all-zero block is no chunk (``is_zero``). ``hash_rates``
measures the candidates on this machine (for ``cascade bench protect``; docs/decisions.md
has the figures behind the choice). Imports only the standard library, blake3 and xxhash.
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

NAME_LENGTH = 64  # hex digits of a 256-bit BLAKE3 digest
MIB = 1024 * 1024
PIECE = 256 * 1024  # bytes both digests hash in turn (fits a core's L2 cache)


def chunk_name(data: bytes) -> str:
    """The chunk's identity: the BLAKE3-256 hex digest of its bytes."""
    return blake3.blake3(data).hexdigest()


def sha256_hex(data: bytes) -> str:
    """The chunk's integrity digest, kept by the caller and verified on every read."""
    return hashlib.sha256(data).hexdigest()


def digests(data: bytes) -> tuple[str, str]:
    """``chunk_name`` and ``sha256_hex`` of ``data`` in one pass: both hashes take each
    ``PIECE`` in turn while it is still in the core's cache, instead of each reading the
    whole 4 MiB from memory (both together 1,353-1,366 MiB/s against 1,014-1,055, measured
    on 256 MiB of blocks; docs/benchmarks.md)."""
    name, integrity = blake3.blake3(), hashlib.sha256()
    with memoryview(data) as view:
        for start in range(0, len(view), PIECE):
            piece = view[start : start + PIECE]
            name.update(piece)
            integrity.update(piece)
    return name.hexdigest(), integrity.hexdigest()


@dataclass(frozen=True)
class Chunk:
    """A chunk's bytes, its name and its SHA-256; made by ``Chunk.of`` only, so the
    digests are those of the bytes."""

    data: bytes
    name: str
    sha256: str

    @classmethod
    def of(cls, data: bytes) -> Chunk:
        return cls(data, *digests(data))


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
    "blake3": chunk_name,
    "xxh3_128": xxhash.xxh3_128_hexdigest,
    "sha256": sha256_hex,
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
