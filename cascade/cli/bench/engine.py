"""``cascade bench engine``: operations per second through the durable queue and the workers,
latency from acceptance to the end, and the time workers take to resume a killed worker's
workflows.

For each worker count, a fresh embedded Cascade (``cascade up``) on a fresh database and N
``cascade worker`` processes run no-op probes (no step), probes of one empty step (``step_``
figures), then server creates through an emulated site (``site_``); then raw DBOS on another
fresh database on the same server, with N worker processes of its own, runs as many no-op
workflows through a queue set up as Cascade's operations queue (``engine_baselines.py``), and
again as many of one empty step. Like is compared with like, per worker count (``ratio``,
``ratio_step``) and best to best (``ratio_to_raw``, ``ratio_to_raw_step``). Timings come from
the operations' (and the raw workflows') own server-side timestamps. The other baseline,
measured in the same run on the same database, is the rate at which one in-process thread
writes and finishes an operation-like record with plain SQLAlchemy (an insert and an update,
each committed).
Per finished operation of each batch, Cascade's and raw DBOS's (``engine_costs.py``): CPU ms
of the worker processes (and of ``cascade up``), and commits on PostgreSQL (``xact_commit``;
None on SQLite, which counts no transactions); both include idle polling of the queues
during the batch, and the idle rates right after each batch (per second) say how much.
With ``--json`` the last line of output is one JSON object.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from secrets import token_hex
from typing import Annotated, Any

import typer
from keystoneauth1 import session as ks_session
from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from cascade.cli.bench.engine_baselines import RawFigures, plain_writes_per_s, raw_dbos
from cascade.cli.bench.engine_costs import (
    CommitCounter,
    CostMeter,
    commit_counter,
    meter_groups,
)
from cascade.cli.bench.engine_report import json_line, report
from cascade.cli.bench.http import percentile
from cascade.cli.clients import Client, SessionClient, login, password_auth_plugin
from cascade.cli.embedded import EmbeddedCascade, EmbeddedSite, EmbeddedWorker
from cascade.db import Database
from cascade.db.models import Operation
from cascade.engine.queue import OperationQueue
from cascade.errors import CascadeError, present
from cascade.sites.driver import SiteDriver

console = Console()
PASSWORD = "bench-engine-password"  # noqa: S105 - a throwaway deployment's password
IMAGE = "bench-image"
CLIENTS = 4  # client threads submitting operations by default, one keep-alive connection each
RECOVERY_OPS = 20
STALL_S = 60  # no operation finished for this long: the rest are stuck
Request = tuple[str, dict[str, Any] | None]  # (path, JSON body) of a POST answering 202
# Empty steps per probe and per raw DBOS job, and the prefix of the figures of each pair.
STEPS = ((0, ""), (1, "step_"))


@dataclass(frozen=True)
class Batch:
    """Figures of one batch of operations, from their server-side timestamps."""

    ops_per_s: float
    p50_ms: float
    p99_ms: float
    failed: int
    submit_per_s: float  # how fast the API accepted them: a ceiling on ops_per_s
    # Per finished operation over the batch (engine_costs.py), idle polling included:
    commits_per_op: float | None  # PostgreSQL only
    worker_cpu_ms_per_op: float | None  # all ``cascade worker`` processes
    api_cpu_ms_per_op: float | None  # the ``cascade up`` process
    database_cpu_ms_per_op: float | None  # PostgreSQL's processes, if on this machine
    # The same processes per second right after, with nothing to run:
    idle_commits_per_s: float | None
    idle_worker_cpu_ms_per_s: float
    idle_api_cpu_ms_per_s: float


@dataclass
class Deployment:
    data_dir: Path
    db: Database
    env: dict[str, str]
    api: SessionClient  # Cascade's URL through a keystoneauth1 session logged in as the admin
    api_pid: int
    commits: CommitCounter | None  # of ``db`` (PostgreSQL only)
    stack: ExitStack
    clients: int = CLIENTS
    workers: list[EmbeddedWorker] = field(default_factory=list)

    def start_workers(self, count: int) -> None:
        for index in range(len(self.workers), len(self.workers) + count):
            worker = EmbeddedWorker(self.data_dir, f"bench-w{index + 1}", self.db, env=self.env)
            self.stack.callback(worker.stop)
            self.workers.append(worker)
            worker.start(timeout=60)

    def client(self) -> SessionClient:
        """A keystoneauth1 session of its own (one keep-alive connection) with the admin's
        login, which is shared: no new login."""
        return SessionClient(ks_session.Session(auth=self.api.session.auth), self.api.base_url)

    def in_parallel(self, items: list[Any], call: Callable[[Client, Any], Any]) -> list[Any]:
        return in_parallel(self.client, items, call, self.clients)


def in_parallel(
    connect: Callable[[], Client],
    items: list[Any],
    call: Callable[[Client, Any], Any],
    clients: int = CLIENTS,
) -> list[Any]:
    """``call(client, item)`` for every item from ``clients`` threads, each with its own
    client from ``connect``; results in the order of ``items``."""

    def run(chunk: list[Any]) -> list[Any]:
        client = connect()
        try:
            return [call(client, item) for item in chunk]
        finally:
            client.close()

    with ThreadPoolExecutor(clients) as pool:
        done = list(pool.map(run, [items[index::clients] for index in range(clients)]))
    results: list[Any] = [None] * len(items)
    for index, chunk in enumerate(done):
        results[index::clients] = chunk
    return results


def _worker_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"--workers {text!r} is not a comma list of numbers") from None
    if not all(1 <= count <= 64 for count in counts):
        raise typer.BadParameter(f"--workers {text!r}: each count must be 1 to 64")
    return counts


def _server_url(url: str | None) -> str | None:
    with suppress(ArgumentError):
        if url is None or make_url(url).get_backend_name() == "postgresql":
            return url
    raise typer.BadParameter("--database-url: give a PostgreSQL server, or none for SQLite")


def _fresh_database(server_url: str | None, data_dir: Path, stack: ExitStack) -> str:
    """A new empty database: a SQLite file in ``data_dir``, or a database created on the
    PostgreSQL server and dropped when ``stack`` closes, even on failure."""
    if server_url is None:
        return f"sqlite:///{data_dir.resolve() / 'cascade.db'}"
    import psycopg

    server = make_url(server_url)
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"cascade_bench_{token_hex(6)}"
    try:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as error:
        reason = str(error).splitlines()[0]
        raise CascadeError(f"cannot create a database on {server_url}: {reason}") from None

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    stack.callback(drop)
    return server.set(database=name).render_as_string(hide_password=False)


@contextmanager
def _deployment(
    server_url: str | None,
    site: EmbeddedSite | None,
    concurrency: int | None = None,
    clients: int = CLIENTS,
) -> Iterator[Deployment]:
    """``cascade up`` on a fresh data dir and database, ``site`` registered; the caller starts
    the workers. Every child is stopped and everything removed on exit."""
    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cascade-bench-")))
        url = _fresh_database(server_url, data_dir, stack)
        env = {"CASCADE_DATABASE_URL": url, "CASCADE_PASSWORD_HASH_ROUNDS": "4"}
        env["CASCADE_LOG_LEVEL"] = "warning"
        if concurrency is not None:
            env["CASCADE_WORKER_CONCURRENCY"] = str(concurrency)
        cascade = stack.enter_context(EmbeddedCascade(data_dir, PASSWORD, env=env))
        db = Database(url)
        stack.callback(db.dispose)
        session = login(password_auth_plugin(f"{cascade.url}/identity/v3", PASSWORD))
        api = SessionClient(session, cascade.url)
        pid = present(cascade.pid, "cascade up's process")
        commits = commit_counter(server_url, url, stack)
        deployment = Deployment(data_dir, db, env, api, pid, commits, stack, clients)
        if site is not None:
            credentials = {"username": "admin", "password": PASSWORD, "project_name": "admin"}
            body: dict[str, Any] = {"name": site.site_name, "region_name": site.region}
            body.update(identity_url=site.auth_url, credentials=credentials)
            deployment.api.call("POST", "/v1/sites", body, 201)
        yield deployment


def _start_site(root: Path, name: str, build_seconds: float, stack: ExitStack) -> EmbeddedSite:
    site = EmbeddedSite(name, root / name, PASSWORD, args=["--build-seconds", f"{build_seconds:g}"])
    stack.callback(site.stop)
    site.start()
    SiteDriver(site.access()).call(
        "upload image",
        lambda c: c.image.create_image(
            name=IMAGE, data=b"bench" * 512, disk_format="raw", container_format="bare"
        ),
    )
    return site


def submit(client: Client, request: Request) -> str:
    path, body = request
    return str(client.call("POST", path, body, 202)["operation"]["id"])


def _fetch(client: Client, operation_id: str) -> dict[str, Any]:
    found: dict[str, Any] = client.call("GET", f"/v1/operations/{operation_id}")["operation"]
    return found


def _unfinished(db: Database, kind: str) -> int:
    """How many operations of ``kind`` have not finished, read without a commit (the
    batch's commits are counted)."""
    running = Operation.status.in_(("queued", "running"))
    with db.engine.connect() as connection:
        query = select(func.count()).where(Operation.kind == kind, running)
        return connection.scalar(query) or 0


def _wait_done(deployment: Deployment, kind: str) -> None:
    """Until every operation of ``kind`` has finished, or none has for STALL_S seconds (those
    left count as failed)."""
    last, since = -1, time.monotonic()
    while left := _unfinished(deployment.db, kind):
        if left != last:
            last, since = left, time.monotonic()
        elif time.monotonic() - since > STALL_S:
            console.print(f"[red]{left} {kind} operations stuck for {STALL_S} s: failed[/red]")
            return
        time.sleep(0.1)


def _batch(deployment: Deployment, kind: str, requests: list[Request]) -> Batch:
    """Submit every request as fast as the clients can, wait for all, measure."""
    workers = [present(worker.pid, "a worker's process") for worker in deployment.workers]
    groups = {"worker": workers, "api": [deployment.api_pid]}
    meter = CostMeter(meter_groups(groups, deployment.commits), deployment.commits)
    started = time.perf_counter()
    ids = deployment.in_parallel(requests, submit)
    submit_per_s = len(ids) / (time.perf_counter() - started)
    _wait_done(deployment, kind)
    spent = meter.stop()
    operations = deployment.in_parallel(ids, _fetch)
    done = [op for op in operations if op["finished_at"]]
    created = [datetime.fromisoformat(op["created_at"]).timestamp() for op in done]
    finished = [datetime.fromisoformat(op["finished_at"]).timestamp() for op in done]
    latencies = [(end - start) * 1000 for start, end in zip(created, finished, strict=True)]
    return Batch(
        ops_per_s=len(done) / max(max(finished) - min(created), 1e-9) if done else 0.0,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        failed=sum(op["status"] != "succeeded" for op in operations),
        submit_per_s=submit_per_s,
        commits_per_op=spent.commits_per_op(len(done)),
        worker_cpu_ms_per_op=spent.cpu_ms_per_op("worker", len(done)),
        api_cpu_ms_per_op=spent.cpu_ms_per_op("api", len(done)),
        database_cpu_ms_per_op=spent.cpu_ms_per_op("database", len(done)),
        idle_commits_per_s=spent.idle.commits_per_s,
        idle_worker_cpu_ms_per_s=spent.idle.cpu_ms_per_s["worker"],
        idle_api_cpu_ms_per_s=spent.idle.cpu_ms_per_s["api"],
    )


def _servers(site: str, prefix: str, count: int) -> list[Request]:
    spec = {"site": site, "flavor": "m1.tiny", "image": IMAGE}
    return [("/v1/servers", {"name": f"{prefix}-{i}", **spec}) for i in range(count)]


def _victim(deployment: Deployment, queue: OperationQueue) -> tuple[EmbeddedWorker, list[str]]:
    """The worker running the most workflows, and their ids, once one runs any."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.2)
        owned = {
            worker.executor_id: queue.client.list_workflows(
                status="PENDING", executor_id=worker.executor_id, load_input=False
            )
            for worker in deployment.workers
        }
        victim = max(deployment.workers, key=lambda worker: len(owned[worker.executor_id]))
        if owned[victim.executor_id]:
            return victim, [workflow.workflow_id for workflow in owned[victim.executor_id]]
    raise CascadeError("no worker took up a workflow within 20 s")


def _recovery(server_url: str | None, root: Path) -> tuple[float, int, int]:
    """Seconds from SIGKILL of a worker running workflows until each of them runs under
    another worker or has finished; the number of those workflows; failed creates."""
    with ExitStack() as stack:
        site = _start_site(root, "slow", 3, stack)
        # Enough slots that no resumed workflow waits for one: the time measured is detection
        # and handoff, not the survivor's backlog.
        deployment = stack.enter_context(_deployment(server_url, site, RECOVERY_OPS))
        deployment.start_workers(2)
        queue = OperationQueue(deployment.db)
        stack.callback(queue.close)
        deployment.in_parallel(_servers("slow", "recover", RECOVERY_OPS), submit)
        victim, ids = _victim(deployment, queue)
        victim.kill()
        killed = time.monotonic()
        while any(
            state.status not in ("SUCCESS", "ERROR")
            and (state.status != "PENDING" or state.executor_id == victim.executor_id)
            for state in queue.client.list_workflows(workflow_ids=ids, load_input=False)
        ):
            if time.monotonic() - killed > 60:
                raise CascadeError("a killed worker's workflows were not resumed in 60 s")
            time.sleep(0.05)
        seconds = time.monotonic() - killed
        _wait_done(deployment, "server.create")
        with deployment.db.session() as session:
            failed = session.scalar(select(func.count()).where(Operation.status != "succeeded"))
        return seconds, len(ids), failed or 0


def _run(
    counts: list[int],
    ops: int,
    site_ops: tuple[int, float],
    server_url: str | None,
    recovery: bool,
    clients: int,
) -> dict[str, Any]:
    (creates_per_batch, build_seconds) = site_ops
    figures: dict[str, Any] = {"database": "postgresql" if server_url else "sqlite"}
    figures.update(cores=os.cpu_count(), ops=ops, clients=clients, site_ops=creates_per_batch)
    figures.update(site_build_seconds=build_seconds)
    batches: dict[str, dict[str, Batch]] = {prefix: {} for _, prefix in STEPS}
    batches["site_"] = {}
    raws: dict[str, dict[str, RawFigures]] = {prefix: {} for _, prefix in STEPS}
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cascade-bench-")))
        site = _start_site(root, "bench", build_seconds, stack) if creates_per_batch else None
        for count in counts:
            with _deployment(server_url, site, clients=clients) as deployment:
                if "baseline_tx_per_s" not in figures:
                    console.print("baseline: records written and finished by one thread")
                    figures["baseline_tx_per_s"] = plain_writes_per_s(deployment.db)
                deployment.start_workers(count)
                for steps, prefix in STEPS:
                    console.print(f"{count} worker(s): {ops} probes of {steps} steps")
                    probes: list[Request] = [("/v1/probes", {"steps": steps})] * ops
                    batches[prefix][str(count)] = _batch(deployment, "engine.probe", probes)
                if site is not None:
                    console.print(f"{count} worker(s): {creates_per_batch} server creates")
                    creates = _servers(site.site_name, f"bench{count}", creates_per_batch)
                    batches["site_"][str(count)] = _batch(deployment, "server.create", creates)
            for steps, prefix in STEPS:
                console.print(f"{count} worker(s): {ops} raw DBOS workflows of {steps} steps")
                raw_root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="raw-")))
                url = _fresh_database(server_url, raw_root, stack)
                env = {"CASCADE_LOG_LEVEL": "warning"}
                counter = commit_counter(server_url, url, stack)
                raw = raw_dbos(url, raw_root, count, ops, clients, env, counter, steps)
                raws[prefix][str(count)] = raw
        if recovery:
            console.print("recovery: SIGKILL of a worker with workflows in flight")
            seconds, resumed, failed = _recovery(server_url, root)
            figures.update(recovery_s=seconds, recovery_workflows=resumed, recovery_failed=failed)
    for prefix, found in batches.items():
        for name in (each.name for each in fields(Batch)):
            figures[prefix + name] = {n: getattr(batch, name) for n, batch in found.items()}
    for prefix, ran in raws.items():
        for name in (each.name for each in fields(RawFigures)):
            figures[f"raw_dbos_{prefix}{name}"] = {n: getattr(raw, name) for n, raw in ran.items()}
    baseline = figures["baseline_tx_per_s"]
    figures["ops_vs_baseline"] = {n: rate / baseline for n, rate in figures["ops_per_s"].items()}
    for _, prefix in STEPS:
        ours, theirs = figures[f"{prefix}ops_per_s"], figures[f"raw_dbos_{prefix}ops_per_s"]
        suffix = f"_{prefix.rstrip('_')}" if prefix else ""
        figures[f"ratio{suffix}"] = {n: rate / max(theirs[n], 1e-9) for n, rate in ours.items()}
        best = max(theirs.values())
        figures[f"ratio_to_raw{suffix}"] = max(ours.values()) / best if best else 0.0
    return figures


def engine(
    workers: Annotated[str, typer.Option(help="Worker counts, a comma list")] = "1,2,4",
    ops: Annotated[int, typer.Option(min=1, help="No-op probes per worker count")] = 2000,
    site_ops: Annotated[
        int, typer.Option(min=0, help="Server creates via an emulated site per count (0: skip)")
    ] = 100,
    site_build_seconds: Annotated[
        float,
        typer.Option(min=0, help="The site's server build time: > 0 makes site steps wait (I/O)"),
    ] = 0.0,
    database_url: Annotated[
        str | None,
        typer.Option(help="PostgreSQL server URL; a fresh database per run [default: SQLite]"),
    ] = None,
    recovery: Annotated[
        bool, typer.Option(help="Measure resumption after SIGKILL of a worker")
    ] = True,
    clients: Annotated[
        int,
        typer.Option(
            min=1, max=64, help="Threads submitting (Cascade's HTTP clients, raw DBOS's enqueuers)"
        ),
    ] = CLIENTS,
    as_json: Annotated[bool, typer.Option("--json", help="Print figures as JSON last")] = False,
) -> None:
    """Engine operations per second and latency by worker count, and crash recovery time.

    Per finished operation, for Cascade and raw DBOS: worker CPU ms (and Cascade's API CPU
    ms) and, with PostgreSQL on this machine, its server's CPU ms, from /proc, and commits
    (PostgreSQL's xact_commit; n/a on SQLite, which keeps no count). All include the queues'
    idle polling during the batch; idle_* are the same processes' rates per second right
    after it, with nothing to run. Each batch is followed by 3 s of idle measuring; on
    PostgreSQL by 11 s for its statistics to settle, then 6 s of idle measuring
    (engine_costs.py says why).
    """
    sites = (site_ops, site_build_seconds)
    server = _server_url(database_url)
    figures = _run(_worker_counts(workers), ops, sites, server, recovery, clients)
    report(console, figures)
    if as_json:
        print(json_line(figures))
