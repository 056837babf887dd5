"""What one operation costs in ``cascade bench engine``, measured around a batch in the same
run: CPU of the processes doing the work and commits on PostgreSQL.

CPU is user + system time from ``/proc/<pid>/stat`` (all threads; live child processes
included) at the start and the end of the batch, so it includes whatever a process did
meanwhile besides the operations: idle polling of the queues (DBOS polls every
``queue_poll_interval``), heartbeats and periodic passes.

The database's CPU is its server's processes' (every database's backends, the bench's own
reads, the server's writers and autovacuum), when the server runs on this machine.

Commits are ``xact_commit`` of the batch's database in ``pg_stat_database``, read from a
connection to another database of the server (reading from the batch's own would count
itself). Every process's commits are in it, idle polling included; the bench's own
waiting reads do not commit. PostgreSQL publishes a backend's counts when a transaction
ends at least 1 s after its previous report, and an idle backend's only after 10 s
(PostgreSQL 15: ``PGSTAT_MIN_INTERVAL``, ``PGSTAT_IDLE_INTERVAL``), so the end is read
``STATS_SETTLE_S`` after the batch and then again ``IDLE_RATE_S`` later; the commits made
during the settle, at the rate between those two readings, are taken off. Measured on
PostgreSQL 15.20: an idle worker's counts (Cascade's or raw DBOS's) appear about every
second, 100 commits of a connection left idle appear 10 s later, all of them, when its
transactions read a table. A backend whose transactions touch no table (``SELECT 1``) has
only its commit count pending, which PostgreSQL 15 does not publish on its own: after its
first report, 100 such commits stayed unpublished for 28 s (likely also why a connection
running only reads every 50 ms once published once in 75 s); every transaction of a worker
or an API process reads or writes a table. So a figure can miss or gain about a second of
one process's commits at each end of the batch. What is taken off for the
settle is the idle rate times ``STATS_SETTLE_S``, so the rate's error grows by
``STATS_SETTLE_S`` over the window it is read in: with a 3 s window, a CI run on a slow machine
(idle polling 69 commits/s, 20 probes) counted 1.3 commits per probe where every probe makes
at least 2; the window is ``COMMIT_RATE_S`` (6 s) since. On SQLite there is no such counter
(no server; SQLite keeps no count of transactions), so commits are ``None``.

The idle rates (CPU ms and commits per second over ``IDLE_RATE_S`` right after the batch,
nothing left to run) say how much of the per-operation figures is polling: about the idle
rate times the batch's duration.

Linux only (``/proc``). Imports only ``cascade.errors`` of Cascade's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from cascade.errors import present

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
STATS_SETTLE_S = 11.0  # an idle backend's counts are published after 10 s (PostgreSQL 15)
PUBLISHED_S = 1.1  # a busy backend's counts are published within 1 s
IDLE_RATE_S = 3.0  # the idle rates are read over this long after the batch
COMMIT_RATE_S = 6.0  # ... and over this long with commits to count: see above


def _family(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(child) for child in (task / "children").read_text().split())
    return found


def cpu_seconds(pids: Iterable[int], descendants: bool = True) -> float:
    """User + system CPU seconds so far of ``pids`` and (unless ``descendants`` is false)
    their live descendants (a process that has gone counts nothing)."""
    ticks = 0
    for pid in pids:
        for member in _family(pid) if descendants else [pid]:
            with suppress(OSError):
                fields = _stat_fields(member)
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / TICKS_PER_S


def _stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces and
    parentheses): state is the first, the parent's pid the second, utime the 12th and stime
    the 13th. OSError if the process is gone."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


class CommitCounter:
    """``xact_commit`` of one database on a PostgreSQL server, read through ``server_url``
    (another database of the same server)."""

    def __init__(self, server_url: str, database: str) -> None:
        import psycopg

        url = make_url(server_url)
        if url.database == database:
            raise ValueError("read the counter from another database than the one counted")
        self.database = database
        admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._connection = psycopg.connect(admin, autocommit=True)

    def read(self) -> int:
        """Commits published so far (a fresh snapshot of the statistics each time)."""
        self._connection.execute("SELECT pg_stat_clear_snapshot()")
        row = self._connection.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (self.database,)
        ).fetchone()
        if row is None:
            raise LookupError(f"no statistics for database {self.database!r}")
        return int(row[0])

    def server_pid(self) -> int | None:
        """The server's main process if it runs on this machine (its backends and helpers
        are its children), else None."""
        row = self._connection.execute("SELECT pg_backend_pid()").fetchone()
        backend = int(row[0]) if row else 0
        try:
            if Path(f"/proc/{backend}/comm").read_text().strip() != "postgres":
                return None
            return int(_stat_fields(backend)[1])  # the parent: the postmaster
        except OSError:
            return None

    def close(self) -> None:
        self._connection.close()


def meter_groups(
    groups: dict[str, list[int]], counter: CommitCounter | None
) -> dict[str, list[int]]:
    """``groups`` and, if the counted server runs on this machine, "database": all its
    processes (every database's backends, the bench's own reads and the server's writers)."""
    pid = counter.server_pid() if counter is not None else None
    return {**groups, "database": [pid]} if pid is not None else groups


def commit_counter(server_url: str | None, url: str, stack: ExitStack) -> CommitCounter | None:
    """A counter of the commits on the database ``url`` read through ``server_url`` (closed
    with ``stack``), or None without a server (SQLite)."""
    if server_url is None:
        return None
    counter = CommitCounter(server_url, present(make_url(url).database, "a database name"))
    stack.callback(counter.close)
    return counter


@dataclass(frozen=True)
class Idle:
    """What the processes spend per second with no operation to run, right after a batch."""

    cpu_ms_per_s: dict[str, float]
    commits_per_s: float | None


@dataclass(frozen=True)
class Spent:
    """What a batch spent: CPU seconds by group of processes and commits (None: not
    counted), idle polling included; and the idle rates measured right after it."""

    cpu_s: dict[str, float]
    commits: float | None
    idle: Idle

    def cpu_ms_per_op(self, group: str, operations: int) -> float | None:
        """None if ``group`` was not measured (the database on another machine)."""
        if group not in self.cpu_s or not operations:
            return None
        return self.cpu_s[group] * 1000 / operations

    def commits_per_op(self, operations: int) -> float | None:
        return self.commits / operations if operations and self.commits is not None else None


class CostMeter:
    """Started just before a batch, stopped once its last operation has finished.
    ``groups`` names the processes to charge (their pids). With a counter, it starts once
    the commits of the processes' start are published."""

    def __init__(self, groups: dict[str, list[int]], counter: CommitCounter | None) -> None:
        self._groups = groups
        self._counter = counter
        if counter is not None:
            time.sleep(PUBLISHED_S)  # what the processes did while starting is published
        self._cpu = self._cpu_now()
        self._commits = counter.read() if counter is not None else 0

    def _cpu_now(self) -> dict[str, float]:
        return {name: cpu_seconds(pids) for name, pids in self._groups.items()}

    def stop(self) -> Spent:
        """What was spent since the start, and the idle rates over the next IDLE_RATE_S;
        with a counter, after STATS_SETTLE_S for PostgreSQL's statistics to settle and over
        COMMIT_RATE_S, minus the commits made during the settle. Let nothing else use the
        processes or the database until it returns."""
        ended, cpu_now = time.monotonic(), self._cpu_now()
        cpu = {name: seconds - self._cpu[name] for name, seconds in cpu_now.items()}
        if self._counter is not None:
            time.sleep(max(0.0, ended + STATS_SETTLE_S - time.monotonic()))
        idle_from, cpu_from = time.monotonic(), self._cpu_now()
        settled = self._counter.read() if self._counter is not None else 0
        time.sleep(IDLE_RATE_S if self._counter is None else COMMIT_RATE_S)
        later = self._counter.read() if self._counter is not None else 0
        span, cpu_to = time.monotonic() - idle_from, self._cpu_now()
        idle_cpu = {name: (cpu_to[name] - cpu_from[name]) * 1000 / span for name in cpu_to}
        if self._counter is None:
            return Spent(cpu, None, Idle(idle_cpu, None))
        rate = (later - settled) / span
        commits = max(0.0, settled - self._commits - rate * (idle_from - ended))
        return Spent(cpu, commits, Idle(idle_cpu, rate))
