"""``cascade status``: the cluster as ``GET /v1/cluster`` shows it, read from the database:
workers and their last heartbeat (an alive worker whose heart stopped shows as silent), queue
depth, operations in flight, the last convergence pass (interrupted, or resumed by whom, when
its worker is gone) and how many repairs it made."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from cascade.cli.ops import operator_services, output, seconds, when
from cascade.cli.options import DataDir
from cascade.engine.cluster import cluster_status
from cascade.engine.schemas import ClusterOut, ConvergencePassOut, WorkerOut

STATE_STYLE = {"alive": "green", "silent": "red", "stopped": "yellow", "recovered": "red"}


def workers_table(cluster: ClusterOut) -> Table:
    table = Table("worker", "host", "pid", "state", "started", "last heartbeat", "recovered by")
    table.columns[0].no_wrap = True
    for worker in cluster.workers:
        table.add_row(
            worker.executor_id,
            worker.host,
            str(worker.pid),
            Text(_state(worker), style=STATE_STYLE.get(_state(worker), "")),
            when(worker.started_at),
            f"{seconds(worker.heartbeat_age_s)} ago",
            worker.recovered_by or "-",
        )
    return table


def _state(worker: WorkerOut) -> str:
    """alive, or silent for one whose row says alive but whose heart stopped."""
    return "silent" if worker.state == "alive" and not worker.live else worker.state


def describe_pass(last: ConvergencePassOut | None) -> str:
    if last is None:
        return "none yet"
    note = f" ({last.note})" if last.note else ""
    return (
        f"{last.id} {last.status}{note}, scheduled {when(last.scheduled_for)} on "
        f"{last.executor_id}, took {seconds(_took(last))}, checked {last.checked}, "
        f"repairs {len(last.repairs)}"
    )


def _took(last: ConvergencePassOut) -> float | None:
    if last.finished_at is None:
        return None
    return (last.finished_at - last.started_at).total_seconds()


def status(data_dir: DataDir = None) -> None:
    """Show the cluster: workers and their heartbeats, queue depth, operations in flight and
    the last convergence pass."""
    with operator_services(data_dir) as svc:
        cluster = cluster_status(svc)
    console = output()
    alive = sum(1 for worker in cluster.workers if worker.live)
    console.print(f"[bold]workers[/bold]      {alive} alive of {len(cluster.workers)} known")
    if cluster.workers:
        console.print(workers_table(cluster))
    depth = ", ".join(f"{queue} {count}" for queue, count in sorted(cluster.queue_depth.items()))
    console.print(f"[bold]queue depth[/bold]  {depth}")
    flight = cluster.in_flight
    console.print(f"[bold]in flight[/bold]    {flight.queued} queued, {flight.running} running")
    console.print(f"[bold]convergence[/bold]  {describe_pass(cluster.last_convergence)}")
