"""Subjects and the partition hash: stable, roughly uniform, strict about tokens."""

from __future__ import annotations

from collections import Counter

import pytest

from cascade.errors import BadRequest
from cascade.fabric.addressing import (
    PARTITIONS,
    host_subject,
    network_subject,
    partition_of,
    shared_subject,
    subjects_for,
)


def test_partition_hash_is_stable() -> None:
    # Golden values: if these change, producers and deployed agents disagree.
    assert partition_of("compute-0001", 1024) == 665
    assert partition_of("compute-0001", 7) == 3
    assert partition_of("compute-0001") == partition_of("compute-0001", PARTITIONS)
    assert host_subject("compute-0001", 1024) == "cascade.fabric.p.665"


def test_partition_spread_is_roughly_uniform() -> None:
    counts = Counter(partition_of(f"host-{i}", 1024) for i in range(100_000))
    mean = 100_000 / 1024
    assert len(counts) == 1024
    assert max(counts.values()) < 1.5 * mean
    assert min(counts.values()) > 0.5 * mean


def test_subjects() -> None:
    assert network_subject("net-42") == "cascade.fabric.net.net-42"
    assert shared_subject("security-groups") == "cascade.fabric.shared.security-groups"
    assert subjects_for("compute-0001", {"a", "b"}, 1024) == {
        "cascade.fabric.p.665",
        "cascade.fabric.net.a",
        "cascade.fabric.net.b",
    }
    assert subjects_for("compute-0001", set(), 1024) == {"cascade.fabric.p.665"}


@pytest.mark.parametrize("bad", ["", "a.b", "a*", ">", "a b", "tab\t", "nl\n"])
def test_invalid_tokens_are_rejected(bad: str) -> None:
    with pytest.raises(BadRequest, match="host"):
        partition_of(bad)
    with pytest.raises(BadRequest, match="network id"):
        network_subject(bad)
    with pytest.raises(BadRequest, match="shared kind"):
        shared_subject(bad)
    with pytest.raises(BadRequest):
        subjects_for("ok", {bad})


@pytest.mark.parametrize("partitions", [0, -1])
def test_invalid_partition_count(partitions: int) -> None:
    with pytest.raises(BadRequest, match="partitions"):
        partition_of("compute-0001", partitions)
