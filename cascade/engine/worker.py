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

The heart beats from a thread of its own, so that a slow pass of the main loop never costs
the worker its lease (``Membership.lease_left``). On PostgreSQL, where workers run on other
machines than the database, a worker fences itself: once its lease ran out (cut off from the
database, or paused) its steps' site calls make no more attempts, and a fence thread ends the
process, its sockets reset so that a request still unsent is never delivered when the link
comes back; the database ends its sessions left idle inside a transaction for
``worker_dead_after``, whose row locks the peers need to declare it dead and resume its
work. So a cut-off worker stops before a peer resumes its workflows, and does not run a step
again when the link returns. On SQLite every worker shares one machine and one file lock (a
blocked heartbeat is everyone's), and there is no fence.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import stat
import struct
import sys
import threading
import time
from typing import Any, NoReturn

from dbos import DBOS
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError

from cascade.db import Database
from cascade.engine import dbos_private, schedules
from cascade.engine.context import EngineContext, install
from cascade.engine.dbos_private import DBOS_SCHEMA
from cascade.engine.membership import Membership
from cascade.engine.queue import APP_NAME, APP_VERSION, queue_settings
from cascade.engine.services import EngineServices

log = logging.getLogger("cascade.worker")
GRACE = 1.0  # seconds running workflows may take to finish once the worker is stopping
STATISTICS_EVERY = 2.0  # seconds between looks at the queue table's statistics (PostgreSQL)
FENCE_EVERY = 0.05  # seconds at most between the fence's looks at the lease
FENCED = 4  # the exit code of a worker that fenced itself
RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close resets, unsent bytes dropped


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


class FencedStop(threading.Event):
    """The event the steps' site calls look at before every attempt: set once the worker
    stops, and read as set as soon as the lease ran out, before the fence thread has ended
    the process (a worker resumed after a pause must not call a site first)."""

    def __init__(self, membership: Membership) -> None:
        super().__init__()
        self._membership = membership

    def is_set(self) -> bool:
        return super().is_set() or self._membership.lease_left() <= 0


class Heart:
    """Beats from a thread until stopped (DBOS's launch and the main loop's passes may take
    longer than ``worker_dead_after``); with ``fenced``, a second thread ends the process
    once the lease ran out, until the process ends."""

    def __init__(self, membership: Membership, interval: float, fenced: bool) -> None:
        self._membership = membership
        self._interval = interval
        self._done = threading.Event()
        self._beating = threading.Thread(target=self._beat, name="cascade-heartbeat", daemon=True)
        self._fence = threading.Thread(target=self._watch, name="cascade-fence", daemon=True)
        self._fenced = fenced

    def start(self) -> None:
        self._beating.start()
        if self._fenced:
            self._fence.start()

    def stop(self) -> None:
        """No more beats (the fence keeps watching the lease)."""
        self._done.set()
        self._beating.join()

    def _beat(self) -> None:
        executor_id = self._membership.executor_id
        while not self._done.wait(self._interval):
            try:
                alive = self._membership.beat()
            except SQLAlchemyError as error:  # the fence ends the process if this goes on
                log.warning("worker %s could not beat: %s", executor_id, error)
                continue
            if not alive:
                # Peers already run this worker's workflows: stop at once, finish nothing.
                log.error("worker %s was declared dead by another worker; stopping", executor_id)
                _exit(3)

    def _watch(self) -> None:
        while (left := self._membership.lease_left()) > 0:
            time.sleep(min(left, FENCE_EVERY))
        log.error(
            "worker %s could not renew its lease (its heartbeat) in the database for %.1f s "
            "(a lease is %.1f s): stopping before a peer may resume its work",
            self._membership.executor_id,
            self._membership.lease - self._membership.lease_left(),
            self._membership.lease,
        )
        reset_sockets()
        _exit(FENCED)


def reset_sockets() -> None:
    """Make every socket of this process reset when it closes instead of sending what it
    still holds: a request written while the link was down must not reach a site (or the
    database) once the link is back, after a peer has run the step again."""
    for name in os.listdir("/proc/self/fd"):
        try:
            if not stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                continue
            with socket.socket(fileno=os.dup(int(name))) as duplicate:
                duplicate.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
        except OSError:  # closed meanwhile (the listing's own descriptor, too)
            continue


def end_idle_transactions(db: Database, seconds: float) -> None:
    """Have PostgreSQL end this process's sessions that stay idle inside a transaction for
    ``seconds``: a worker cut off mid-transaction would hold its row locks (its heartbeat's,
    its workflows') until the link returns, and its peers need them to resume its work."""
    milliseconds = max(1, int(seconds * 1000))

    def bound(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET idle_in_transaction_session_timeout = {milliseconds}")
        dbapi_connection.commit()

    event.listen(db.engine, "connect", bound)
    db.engine.dispose()  # connections made before (if any) are made again, bounded


def run_worker(services: EngineServices, executor_id: str, stop: threading.Event) -> NoReturn:
    """Work until ``stop`` is set, another worker declares this one dead or its lease runs
    out, then end the process (threads parked on interrupted steps must not outlive it)."""
    settings = services.settings
    membership = Membership(services.db, executor_id, settings.worker_dead_after)
    fenced = services.db.dialect == "postgresql"
    stopping = FencedStop(membership) if fenced else threading.Event()
    install(EngineContext(services, stopping))
    if fenced:
        end_idle_transactions(services.db, settings.worker_dead_after)
    membership.join()
    heart = Heart(membership, settings.heartbeat_interval, fenced)
    heart.start()
    _launch(services, executor_id)  # seconds on a loaded machine: peers must see us alive
    # What launching built (~220,000 objects: DBOS, SQLAlchemy, the handlers) lives as long
    # as the process: frozen, the collections its workflows trigger stop walking it.
    gc.collect()
    gc.freeze()
    log.info("worker %s joined", executor_id)
    looked = time.monotonic()
    try:
        while not stop.wait(settings.heartbeat_interval):
            for dead in membership.reap():
                resumed = dbos_private.resume_on_their_queues([dead])
                log.warning("worker %s is gone: resumed %d workflows", dead, resumed)
            _resume_orphans(services, membership)
            if time.monotonic() - looked > STATISTICS_EVERY:
                looked = time.monotonic()
                if dbos_private.analyze_if_stale(services.db):
                    log.info("analysed the queue's table (its statistics were stale)")
    finally:
        stopping.set()  # also when the loop failed: site calls stop, steps park
        _leave(membership, heart)
    _exit(0)


def _leave(membership: Membership, heart: Heart) -> None:
    """Take no more work, give running workflows ``GRACE`` to finish, leave the cluster."""
    dbos_private.stop_dequeuing()
    deadline = time.monotonic() + GRACE
    while dbos_private.active_workflows() and time.monotonic() < deadline:
        time.sleep(0.05)
    left = dbos_private.active_workflows()
    heart.stop()  # a beat after leaving would find this worker stopped, as if declared dead
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
