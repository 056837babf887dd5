"""Subjects and the partition hash: the one place both ends of the fabric agree on.

Producers (the control plane) and consumers (host agents) import these functions, so a
message for a host is always published where that host listens.

* Unicast: ``cascade.fabric.p.{partition}`` where ``partition = partition_of(host)``. There
  is deliberately no per-host subject: with a million hosts the broker would hold a
  million subjects and interest entries that each carry almost no traffic. Hosts are
  instead hashed onto a fixed number of partitions; the message carries the target host
  name and an agent drops messages for other hosts in its partition. Broker interest state
  grows with partitions + networks, and a host pays for it with some filtering.
* Multicast: ``cascade.fabric.net.{network_id}``. An agent subscribes to exactly the
  networks it has ports on and unsubscribes when the last port leaves.
* Shared: ``cascade.fabric.shared.{kind}``, consumed by a queue group so each message is
  handled by exactly one member.

The partition hash is BLAKE2b (8-byte digest), never Python's ``hash()``, which is salted
per process and would differ between producer and consumer.
"""

from __future__ import annotations

import hashlib
import re

from cascade.errors import BadRequest

PREFIX = "cascade.fabric"
PARTITIONS = 1024

_BAD_TOKEN = re.compile(r"[.*>\s]")


def validate_token(value: str, what: str) -> str:
    """Return ``value`` if it is a single subject token; raise ``BadRequest`` otherwise."""
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{what} must be a non-empty string, got {value!r}")
    if _BAD_TOKEN.search(value):
        raise BadRequest(
            f"{what} {value!r} is not a valid subject token: "
            "it must not contain '.', '*', '>' or whitespace"
        )
    return value


def _check_partitions(partitions: int) -> int:
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        raise BadRequest(f"partitions must be a positive integer, got {partitions!r}")
    return partitions


def partition_of(host: str, partitions: int = PARTITIONS) -> int:
    """The partition of ``host``: stable across processes, machines and Python versions."""
    validate_token(host, "host")
    digest = hashlib.blake2b(host.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _check_partitions(partitions)


def host_subject(host: str, partitions: int = PARTITIONS) -> str:
    """The unicast subject ``host`` listens on (shared with the other hosts of its partition)."""
    return f"{PREFIX}.p.{partition_of(host, partitions)}"


def network_subject(network_id: str) -> str:
    """The multicast subject for one VPC/network."""
    return f"{PREFIX}.net.{validate_token(network_id, 'network id')}"


def shared_subject(kind: str) -> str:
    """The subject of a shared resource kind, consumed by a queue group."""
    return f"{PREFIX}.shared.{validate_token(kind, 'shared kind')}"


def subjects_for(host: str, networks: set[str], partitions: int = PARTITIONS) -> set[str]:
    """Everything an agent on ``host`` subscribes to: its partition plus one per network."""
    return {host_subject(host, partitions)} | {network_subject(n) for n in networks}
