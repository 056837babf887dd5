"""What ``cascade bench engine`` compares Cascade's engine with, in the same run, on the same
database server: raw DBOS (a no-op workflow through a DBOS queue, run by worker processes of
its own; again with one empty DBOS step, as a one-step probe has) and plain SQL writes (one
thread inserting and finishing a record).

Raw DBOS is set up as Cascade's engine is, so that the ratio is Cascade's own cost: its
tables in a fresh database on the same server (DBOS's schema ``dbos`` on PostgreSQL), the
operations queue's options (partitioned, one job per partition, the same worker concurrency
and polling interval), one queue entry per job enqueued in its own transaction from the same
number of client threads with its own partition key (as a probe is its own resource), and N
worker processes (``python -m cascade.cli.bench.engine_baselines``) that launch DBOS with the
same configuration as ``cascade worker``. Throughput is jobs / (last end - first enqueue),
from DBOS's enqueue time and each job's end time (its output), as Cascade's is from its
operations' ``created_at`` and ``finished_at``.

May import ``cascade.engine`` (queue options, DBOS's tables), ``cascade.cli.embedded``,
``cascade.cli.bench.http``, ``cascade.cli.bench.engine_costs``, ``cascade.db``,
``cascade.config`` and ``cascade.errors``; the bench command imports it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from secrets import token_hex
from typing import Any

from dbos import DBOS, DBOSClient
from sqlalchemy import Column, DateTime, Integer, MetaData, String, insert, text, update
from sqlalchemy import Table as SqlTable

from cascade.cli.bench.engine_costs import CommitCounter, CostMeter, meter_groups
from cascade.cli.bench.http import percentile
from cascade.cli.embedded import ChildServer
from cascade.config import Settings
from cascade.db import Database
from cascade.db.models import utcnow
from cascade.engine import dbos_private
from cascade.engine.queue import OPERATIONS_QUEUE, queue_settings
from cascade.errors import CascadeError, present

RAW_APP = "cascade-bench-raw"
RAW_VERSION = "raw-1"
RAW_QUEUE = "bench-raw"
RAW_WORKFLOW = "bench.raw-noop"
STALL_S = 60.0


@DBOS.step(name="bench.raw-empty-step")
def empty_step() -> None:
    return None


@DBOS.workflow(name=RAW_WORKFLOW)
def noop(enqueued_at: float, steps: int = 0) -> tuple[float, float]:
    """The raw job: ``steps`` empty DBOS steps (0 or 1, as the bench's probes), then its times,
    enqueue and end (as a probe has its ``created_at`` and its ``finished_at``, written by the
    worker just before DBOS records the end; DBOS's own timestamps are whole seconds on
    SQLite under Python 3.11)."""
    for _ in range(steps):
        empty_step()
    return enqueued_at, time.time()


def _queue_options(settings: Settings) -> dict[str, Any]:
    """The operations queue's options, as Cascade's workers register them."""
    return queue_settings(settings)[OPERATIONS_QUEUE]


def _worker_main(argv: list[str]) -> None:
    """A raw DBOS worker: launch DBOS as ``cascade worker`` does, listen to the raw queue,
    say so in the ready file, work until SIGTERM."""
    parser = argparse.ArgumentParser(prog="engine_baselines")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--executor-id", required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    settings = Settings(database_url=args.database_url)
    db = Database(args.database_url)
    DBOS(
        config={
            "name": RAW_APP,
            "system_database_url": db.url,
            "system_database_engine": db.engine,
            "dbos_system_schema": dbos_private.DBOS_SCHEMA,
            "application_version": RAW_VERSION,
            "executor_id": args.executor_id,
            "log_level": "WARNING",
            "run_migrations": False,
            "scheduler_polling_interval_sec": 1.0,
            "max_executor_threads": 4 * settings.worker_concurrency + 8,
        }
    )
    DBOS.launch()
    DBOS.register_queue(RAW_QUEUE, **_queue_options(settings))
    args.ready_file.write_text(str(os.getpid()))
    stop.wait()
    sys.stdout.flush()
    os._exit(0)


class RawWorker(ChildServer):
    """A raw DBOS worker process, started as ``EmbeddedWorker`` starts ``cascade worker``
    (a child of this Python with the deployment's environment); ready once DBOS launched."""

    name = "raw DBOS worker"

    def __init__(self, data_dir: Path, executor_id: str, url: str, env: dict[str, str]) -> None:
        super().__init__(data_dir, None, env, data_dir / f"raw-{executor_id}.log")
        self._ready = data_dir / f"raw-{executor_id}.ready"
        self._args = ["--database-url", url, "--executor-id", executor_id]
        self._args += ["--ready-file", str(self._ready)]

    def start(self, timeout: float = 60.0) -> None:
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, *self._args],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_healthy(timeout)

    def is_ready(self) -> bool:
        return self._ready.exists()


@dataclass(frozen=True)
class RawFigures:
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    failed: int
    # Per finished job over the batch (engine_costs.py), idle polling included; commits
    # (PostgreSQL only) count the enqueues' too, as Cascade's count its API's accepts.
    commits_per_op: float | None
    worker_cpu_ms_per_op: float | None
    database_cpu_ms_per_op: float | None  # PostgreSQL's processes, if on this machine
    idle_commits_per_s: float | None  # right after the batch, nothing left to run
    idle_worker_cpu_ms_per_s: float


def _timings(client: DBOSClient) -> tuple[list[tuple[float, float]], int]:
    """(enqueued, ended) of every raw job that succeeded, epoch seconds; how many did not."""
    found = client.list_workflows(queue_name=RAW_QUEUE, load_input=False)
    done = [present(each.output, "a raw job's times") for each in found if each.status == "SUCCESS"]
    return [(float(start), float(end)) for start, end in done], len(found) - len(done)


def _ended(db: Database) -> int:
    schema = dbos_private.schema_of(db)
    table = f"{schema}.workflow_status" if schema else "workflow_status"
    query = text(
        f"SELECT count(*) FROM {table} "  # noqa: S608 - constant table name
        "WHERE queue_name = :queue AND status IN ('SUCCESS', 'ERROR')"
    )
    with db.engine.connect() as connection:
        return int(connection.execute(query, {"queue": RAW_QUEUE}).scalar_one())


def raw_dbos(
    url: str,
    data_dir: Path,
    workers: int,
    jobs: int,
    clients: int,
    env: dict[str, str],
    counter: CommitCounter | None = None,
    steps: int = 0,
) -> RawFigures:
    """Raw DBOS on the fresh database ``url``: ``workers`` processes, ``jobs`` no-op
    workflows of ``steps`` empty steps each, enqueued from ``clients`` threads as fast as
    they go; commits counted by ``counter`` (of ``url``'s database) if given."""
    db = Database(url)
    settings = Settings(database_url=url)
    with ExitStack() as stack:
        stack.callback(db.dispose)
        dbos_private.create_tables(db)
        client = DBOSClient(
            system_database_engine=db.engine,
            dbos_system_schema=dbos_private.schema_of(db) or dbos_private.DBOS_SCHEMA,
            application_name=RAW_APP,
            retry_connection_errors=False,
        )
        stack.callback(client.destroy)
        client.register_queue(RAW_QUEUE, **_queue_options(settings))
        pids = []
        for index in range(workers):
            worker = RawWorker(data_dir, f"raw-w{index + 1}", url, env)
            stack.callback(worker.stop)
            worker.start()
            pids.append(present(worker.pid, "a raw worker's process"))
        meter = CostMeter(meter_groups({"worker": pids}, counter), counter)

        def enqueue(job: int) -> None:
            options: Any = {
                "workflow_name": RAW_WORKFLOW,
                "queue_name": RAW_QUEUE,
                "workflow_id": f"raw-{job:08d}-{token_hex(4)}",
                "queue_partition_key": f"job-{job}",
                "app_version": RAW_VERSION,
            }
            with db.session() as session:
                client.enqueue_in_transaction(session, options, time.time(), steps)

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(enqueue, range(jobs)))
        _wait_finished(db, jobs)
        spent = meter.stop()
        done, failed = _timings(client)
    latencies = [(ended - created) * 1000 for created, ended in done]
    span_s = max(e for _, e in done) - min(c for c, _ in done) if done else 0.0
    return RawFigures(
        ops_per_s=len(done) / max(span_s, 1e-9) if done else 0.0,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        failed=failed,
        commits_per_op=spent.commits_per_op(len(done)),
        worker_cpu_ms_per_op=spent.cpu_ms_per_op("worker", len(done)),
        database_cpu_ms_per_op=spent.cpu_ms_per_op("database", len(done)),
        idle_commits_per_s=spent.idle.commits_per_s,
        idle_worker_cpu_ms_per_s=spent.idle.cpu_ms_per_s["worker"],
    )


def _wait_finished(db: Database, jobs: int) -> None:
    """Until every raw job has ended, or none has for STALL_S seconds."""
    last, since = -1, time.monotonic()
    while True:
        ended = _ended(db)
        if ended >= jobs:
            return
        if ended != last:
            last, since = ended, time.monotonic()
        elif time.monotonic() - since > STALL_S:
            raise CascadeError(f"raw DBOS: {jobs - ended} jobs stuck for {STALL_S:.0f} s")
        time.sleep(0.1)


def plain_writes_per_s(db: Database, seconds: float = 2.0) -> float:
    """Records one thread inserts and then marks finished per second, each write committed."""
    table = SqlTable(
        f"bench_baseline_{token_hex(4)}",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("status", String(16)),
        Column("finished_at", DateTime(timezone=True)),
    )
    table.create(db.engine)
    try:
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            with db.engine.begin() as connection:
                connection.execute(insert(table).values(id=count, status="running"))
            with db.engine.begin() as connection:
                done = {"status": "succeeded", "finished_at": utcnow()}
                connection.execute(update(table).where(table.c.id == count).values(**done))
            count += 1
        return count / (time.perf_counter() - started)
    finally:
        table.drop(db.engine)


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
