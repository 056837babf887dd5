"""Bandwidth limits of image copies, side by side behind one small interface (``RateLimit``:
``take(count, stop)`` returns once ``count`` bytes fit the rate): ``ByteRateLimit``, a token
bucket in this process, and ``SharedByteRateLimit``, the same bucket kept in the database so
every worker copying to a site under a limit draws from one bucket and the limit holds for
the whole cluster (what the workers' copies use).

Both allow up to one second's worth at once and then the rate; a taker books its bytes at
once and sleeps (never spins) for its share of the deficit outside any lock or transaction;
a set ``stop`` cuts the wait short with ``Interrupted``. May import ``cascade.db``,
``cascade.retry`` and ``cascade.errors``.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from sqlalchemy import case, update
from sqlalchemy.exc import IntegrityError

from cascade.db import Database
from cascade.db.replication_models import BandwidthBucket
from cascade.errors import BadRequest
from cascade.retry import Interrupted

BURST_S = 1.0  # seconds' worth of bytes that may go at once


class RateLimit(Protocol):
    def take(self, count: int, stop: threading.Event | None = None) -> None: ...


def _positive(bytes_per_s: float) -> float:
    if bytes_per_s <= 0:
        raise BadRequest(f"A bandwidth limit must be positive, not {bytes_per_s}.")
    return bytes_per_s


def _pause(seconds: float, stop: threading.Event | None) -> None:
    if seconds <= 0:
        return
    if stop is None:
        time.sleep(seconds)
    elif stop.wait(seconds):
        raise Interrupted


class ByteRateLimit:
    """A token bucket over bytes in this process, safe to share between threads."""

    def __init__(self, bytes_per_s: float) -> None:
        self.rate = _positive(bytes_per_s)
        self._tokens = bytes_per_s * BURST_S
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self, count: int, stop: threading.Event | None = None) -> None:
        with self._lock:  # each taker owes its share; the waits happen outside the lock
            now = time.monotonic()
            refilled = self._tokens + (now - self._last) * self.rate
            self._tokens = min(self.rate * BURST_S, refilled) - count
            self._last = now
            wait = -self._tokens / self.rate
        _pause(wait, stop)


class SharedByteRateLimit:
    """The bucket of copies to ``site`` at ``bytes_per_s``, one row of ``bandwidth_buckets``
    for the cluster. The row keeps ``free_at``, the wall-clock time by which the bytes booked
    so far are paid for (the bucket's deficit, as a time: workers on several machines need
    clocks in step, as NTP keeps them). A take moves it by ``count / rate`` from no earlier
    than ``BURST_S`` ago, in one UPDATE, and waits until the new ``free_at`` if that is
    ahead: what the in-process bucket does, with its tokens as ``rate x (now - free_at)``."""

    def __init__(self, db: Database, site: str, bytes_per_s: float) -> None:
        self.rate = _positive(bytes_per_s)
        self._db = db
        self._key = (site, int(bytes_per_s))
        self._ensure_row()

    def take(self, count: int, stop: threading.Event | None = None) -> None:
        now = time.time()
        floor = now - BURST_S
        site, rate = self._key
        bucket = BandwidthBucket
        paid_from = case((bucket.free_at > floor, bucket.free_at), else_=floor)
        booked = (
            update(bucket)
            .where(bucket.site == site, bucket.rate == rate)
            .values(free_at=paid_from + count / self.rate)
            .returning(bucket.free_at)
        )
        with self._db.session() as session:
            free_at = float(session.execute(booked).scalar_one())
        _pause(free_at - now, stop)

    def _ensure_row(self) -> None:
        site, rate = self._key
        try:
            with self._db.session() as session:
                if session.get(BandwidthBucket, (site, rate)) is None:
                    session.add(BandwidthBucket(site=site, rate=rate, free_at=0.0))
        except IntegrityError:
            pass  # another worker made it at the same moment: it is there
