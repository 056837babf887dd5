"""``cascade worker``: a stateless process that joins the cluster through the database alone.

It launches DBOS over Cascade's database with its own executor id, listens to the operation
and site-call queues, keeps the convergence schedule declared (DBOS fires each tick once per
cluster), beats its heart, resumes the workflows of workers that died, and on PostgreSQL
keeps the queue table's statistics fresh (``dbos_private.analyze_if_stale``).

Stopping (SIGINT/SIGTERM) takes at most about ``GRACE`` seconds whatever the worker waits on:
site calls make no more attempts (the engine context's stop event), no new workflow starts,
running ones get the grace to finish, then the worker leaves the cluster and the process ends
at once. Whatever was still running stays PENDING in DBOS under this worker's id; leaving
marks it stopped, so a live worker resumes that work at once (or this one, restarted with
its id), exactly as after a crash: nothing is lost and no half-finished step is recorded.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from dbos import DBOS

from cascade.engine import dbos_private, schedules
from cascade.engine.context import EngineContext, install
from cascade.engine.dbos_private import DBOS_SCHEMA
from cascade.engine.membership import Membership
from cascade.engine.queue import APP_NAME, APP_VERSION, queue_settings
from cascade.engine.services import EngineServices

log = logging.getLogger("cascade.worker")
GRACE = 1.0  # seconds running workflows may take to finish once the worker is stopping
STATISTICS_EVERY = 2.0  # seconds between looks at the queue table's statistics (PostgreSQL)


def _launch(services: EngineServices, executor_id: str) -> None:
    settings = services.settings
    DBOS(
        config={
            "name": APP_NAME,
            "system_database_url": services.db.url,
            "system_database_engine": services.db.engine,
            "dbos_system_schema": DBOS_SCHEMA,
            "application_version": APP_VERSION,
            "executor_id": executor_id,
            "log_level": "WARNING",
            "run_migrations": False,
            "scheduler_polling_interval_sec": 1.0,
            "max_executor_threads": 4 * settings.worker_concurrency + 8,
        }
    )
    DBOS.launch()
    for name, options in queue_settings(settings).items():
        DBOS.register_queue(name, **options)
    schedules.apply(settings)


def _resume_orphans(services: EngineServices, membership: Membership) -> None:
    """Hand back workflows pending under an executor that is not alive: one declared dead
    that dequeued more before it noticed, or one that never joined the table."""
    orphaned = services.queue.pending_executors() - membership.alive()
    if orphaned and membership.may_judge():
        resumed = dbos_private.resume_on_their_queues(sorted(orphaned))
        if resumed:
            log.warning("resumed %d workflows of gone workers %s", resumed, sorted(orphaned))


@contextmanager
def _beating(membership: Membership, interval: float) -> Iterator[None]:
    """Beat the heart from a thread while the body runs: DBOS's launch (recovering this
    executor's workflows) may take longer than ``worker_dead_after``, and a peer must not
    declare a worker dead that is still starting."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(interval):
            if not membership.beat():
                log.error("worker %s was declared dead while starting", membership.executor_id)
                _exit(3)

    thread = threading.Thread(target=beat, name="cascade-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def run_worker(services: EngineServices, executor_id: str, stop: threading.Event) -> NoReturn:
    """Work until ``stop`` is set or another worker declares this one dead, then end the
    process (threads parked on interrupted steps must not outlive it)."""
    settings = services.settings
    install(EngineContext(services, stop))
    membership = Membership(services.db, executor_id, settings.worker_dead_after)
    membership.join()
    with _beating(membership, settings.heartbeat_interval):
        _launch(services, executor_id)  # seconds on a loaded machine: peers must see us alive
    log.info("worker %s joined", executor_id)
    looked = time.monotonic()
    try:
        while not stop.wait(settings.heartbeat_interval):
            if not membership.beat():
                # Peers already run this worker's workflows: stop at once, finish nothing.
                log.error("worker %s was declared dead by another worker; stopping", executor_id)
                _exit(3)
            for dead in membership.reap():
                resumed = dbos_private.resume_on_their_queues([dead])
                log.warning("worker %s is gone: resumed %d workflows", dead, resumed)
            _resume_orphans(services, membership)
            if time.monotonic() - looked > STATISTICS_EVERY:
                looked = time.monotonic()
                if dbos_private.analyze_if_stale(services.db):
                    log.info("analysed the queue's table (its statistics were stale)")
    finally:
        stop.set()  # also when the loop failed: site calls stop, steps park
        _leave(membership)
    _exit(0)


def _leave(membership: Membership) -> None:
    """Take no more work, give running workflows ``GRACE`` to finish, leave the cluster."""
    dbos_private.stop_dequeuing()
    deadline = time.monotonic() + GRACE
    while dbos_private.active_workflows() and time.monotonic() < deadline:
        time.sleep(0.05)
    left = dbos_private.active_workflows()
    membership.leave()
    if left:
        log.info(
            "worker %s stopped; %d running workflows are left for a live worker to resume",
            membership.executor_id,
            left,
        )
    else:
        log.info("worker %s stopped", membership.executor_id)


def _exit(code: int) -> NoReturn:
    """End the process now, logs flushed: no thread (a parked step, DBOS's) runs on."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
