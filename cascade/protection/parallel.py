"""The few threads protection's data paths share out their work on: blocks read and stored by
a backup, blocks written by a restore, ports re-pointed at a site after a restore. Imports only
the standard library."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

A = TypeVar("A")
R = TypeVar("R")
STREAMS = 4  # items worked on at once


def in_parallel(work: Callable[[A], R], items: list[A]) -> Iterator[R]:
    """``work`` of each item on ``STREAMS`` threads, results in order; the first failure
    cancels what has not started and is raised once the running ones are done."""
    pool = ThreadPoolExecutor(STREAMS, thread_name_prefix="protection")
    try:
        yield from pool.map(work, items)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
