"""The image copies' bandwidth limit holds for the whole cluster: two buckets for the same
site and rate (two workers' copies) draw from one row, on SQLite and PostgreSQL, other sites
and limits from their own; the burst is one second's worth, after which a taker waits. No site is
contacted and nothing sleeps: each wait is seen as the ``Interrupted`` of a set stop."""

from __future__ import annotations

import threading
import time

import pytest

from cascade.db import Database
from cascade.db.replication_models import BandwidthBucket
from cascade.replication.bandwidth import ByteRateLimit, SharedByteRateLimit
from cascade.retry import Interrupted

RATE = 1 << 20
STOPPED = threading.Event()
STOPPED.set()  # a take that would wait raises Interrupted at once


@pytest.fixture
def db(backend_db: Database) -> Database:
    return backend_db


def test_two_workers_share_one_bucket_per_site_and_rate(db: Database) -> None:
    one, other = SharedByteRateLimit(db, "site-b", RATE), SharedByteRateLimit(db, "site-b", RATE)
    before = time.time()
    with pytest.raises(Interrupted):
        one.take(10 * RATE, STOPPED)  # ten seconds' worth: booked, nine of them to wait
    with pytest.raises(Interrupted):
        other.take(1, STOPPED)  # the other worker's byte waits behind them, same bucket
    ByteRateLimit(RATE).take(1, STOPPED)  # what it would not do with a bucket of its own
    SharedByteRateLimit(db, "site-c", RATE).take(RATE, STOPPED)  # another site: its own
    SharedByteRateLimit(db, "site-b", 2 * RATE).take(RATE, STOPPED)  # another limit: its own
    with db.session() as session:
        row = session.get(BandwidthBucket, ("site-b", RATE))
        assert row is not None
        assert before + 9 < row.free_at < time.time() + 9.1, (before, row.free_at)


def test_an_in_process_bucket_waits_beyond_its_burst() -> None:
    bucket = ByteRateLimit(RATE)
    bucket.take(RATE, STOPPED)  # the burst: no wait
    with pytest.raises(Interrupted):
        bucket.take(RATE // 2, STOPPED)
