"""``cascade op list | show | wait``: operations as the operator sees them, read straight from
the database where Cascade runs (like ``cascade init``), across every project.

``wait`` follows an operation with a live progress view (steps succeeded and failed, and
whether any worker is alive to run it) and exits 0 if it succeeded, 1 if it failed (its error
on one line) and 2 if it was still going at the timeout (saying why, when no worker is alive).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from cascade.cli.options import DataDir
from cascade.config import load_settings
from cascade.engine.cluster import live_workers
from cascade.engine.schemas import OperationOut
from cascade.errors import CascadeError
from cascade.services import Services

app = typer.Typer(help="Operations: list, show, wait for one.", no_args_is_help=True)
PIPE_WIDTH = 200  # piped output keeps every column and whole ids, for grep and logs

OperationId = Annotated[str, typer.Argument(help="The operation's id")]
STATUS_STYLE = {"queued": "yellow", "running": "cyan", "succeeded": "green", "failed": "red"}
POLL_SECONDS = 0.25


class Status(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


def output() -> Console:
    """A console on stdout: the terminal's width, or a wide one when stdout is piped (unless
    COLUMNS says otherwise)."""
    console = Console()
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(width=PIPE_WIDTH)


@contextmanager
def operator_services(data_dir: Path | None) -> Iterator[Services]:
    """The services of the Cascade whose data dir is given; refuses an uninitialised one."""
    settings = load_settings(data_dir=data_dir)
    if settings.database_url is None and not (settings.data_dir / "cascade.db").exists():
        raise CascadeError(f"{settings.data_dir} is not initialised: run 'cascade init' first")
    services = Services(settings)
    try:
        yield services
    finally:
        services.close()


def one_line(text: str) -> str:
    return " ".join(text.split())


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.2f} s"
    minutes, rest = divmod(int(value), 60)
    return f"{minutes}m{rest:02d}s"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def styled(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def sites_summary(operation: OperationOut) -> str:
    return ", ".join(f"{site}: {status}" for site, status in sorted(operation.sites.items())) or "-"


@app.command("list")
def list_operations(
    data_dir: DataDir = None,
    status: Annotated[Status | None, typer.Option(help="Only operations in this status")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind, e.g. server.create")] = None,
    resource: Annotated[
        str | None, typer.Option(help="Only operations on this resource id")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many")] = 50,
) -> None:
    """List operations, newest first."""
    with operator_services(data_dir) as svc:
        found = svc.operations.list(
            None,
            status=status.value if status else None,
            kind=kind,
            resource_id=resource,
            limit=limit,
        )
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("id", no_wrap=True, min_width=32)
    table.add_column("kind", no_wrap=True)
    table.add_column("resource", overflow="fold", min_width=14)
    table.add_column("status", no_wrap=True)
    table.add_column("sites", min_width=8)
    table.add_column("duration", no_wrap=True, justify="right")
    table.add_column("error", overflow="fold", min_width=12)
    for operation in found:
        table.add_row(
            operation.id,
            operation.kind,
            f"{operation.resource.type} {operation.resource.id}",
            styled(operation.status),
            sites_summary(operation),
            seconds(operation.duration_s),
            one_line(operation.error or ""),
        )
    output().print(table if found else "no operations")


def steps_table(operation: OperationOut) -> Table:
    table = Table("step", "site", "status", "attempts", "started", "took", "error")
    for step in operation.steps:
        took = (step.finished_at - step.started_at).total_seconds() if step.finished_at else None
        table.add_row(
            step.name,
            step.site or "-",
            styled(step.status),
            str(step.attempts),
            when(step.started_at),
            seconds(took),
            one_line(step.error or ""),
        )
    return table


@app.command("show")
def show(operation_id: OperationId, data_dir: DataDir = None) -> None:
    """Show an operation: state, timings, per-site progress, each step and the error."""
    with operator_services(data_dir) as svc:
        operation = svc.operations.get(operation_id, None)
    header = Table.grid(padding=(0, 2))
    for name, value in (
        ("id", Text(operation.id)),
        ("kind", Text(operation.kind)),
        ("resource", Text(f"{operation.resource.type} {operation.resource.id}")),
        ("project", Text(operation.project_id)),
        ("status", styled(operation.status)),
        ("worker", Text(operation.executor_id or "-")),
        ("created", Text(when(operation.created_at))),
        ("started", Text(when(operation.started_at))),
        ("finished", Text(when(operation.finished_at))),
        ("duration", Text(seconds(operation.duration_s))),
        ("sites", Text(sites_summary(operation))),
        ("error", Text(one_line(operation.error or "-"))),
    ):
        header.add_row(Text(name, style="bold"), value)
    console = output()
    console.print(header)
    console.print(steps_table(operation) if operation.steps else "no steps yet")


def serving_note(svc: Services, operation: OperationOut) -> str | None:
    """Why an operation in flight may not move: no live worker, or its worker is gone."""
    if operation.status not in ("queued", "running"):
        return None
    live = {worker.executor_id for worker in live_workers(svc)}
    if not live:
        return (
            "no worker is alive (none has beaten its heart in the last "
            f"{svc.settings.worker_dead_after:g} s): nothing runs this operation until one "
            "starts ('cascade worker' or 'cascade up --workers N')"
        )
    if operation.status == "running" and operation.executor_id not in live:
        return f"its worker {operation.executor_id} is gone; a live worker resumes it"
    return None


def progress_view(operation: OperationOut, elapsed: float, note: str | None) -> RenderableType:
    """Status, steps succeeded and failed of those begun so far (a bar), time waited, why it
    may be stuck, and per-site status."""
    total = len(operation.steps)
    succeeded = sum(1 for step in operation.steps if step.status == "succeeded")
    failed = sum(1 for step in operation.steps if step.status == "failed")
    title = Text.assemble(
        ("operation ", "bold"), operation.id, "  ", operation.kind, "  ", styled(operation.status)
    )
    counts = f"{succeeded}/{total} steps succeeded" + (f", {failed} failed" if failed else "")
    progress = Table.grid(padding=(0, 1))
    progress.add_row(
        ProgressBar(
            total=max(total, 1),
            completed=succeeded + failed,
            width=30,
            complete_style="red" if failed else "bar.complete",
            finished_style="red" if failed else "bar.finished",
        ),
        Text(counts, style="red" if failed else ""),
        Text(f"{elapsed:.1f} s", style="dim"),
    )
    parts: list[RenderableType] = [title, progress]
    if note:
        parts.append(Text(note, style="yellow"))
    if operation.sites:
        sites = Table("site", "status", box=box.SIMPLE_HEAD)
        for site, status in sorted(operation.sites.items()):
            sites.add_row(site, styled(status))
        parts.append(sites)
    return Group(*parts)


def follow(
    svc: Services, operation_id: str, timeout: float | None, console: Console
) -> tuple[OperationOut, str | None]:
    """Poll the operation until it ends or ``timeout`` passes; a live view on a terminal, the
    last view only when stdout is piped. Returns it and why it may be stuck (None: nothing)."""
    started = time.monotonic()
    operation = svc.operations.get(operation_id, None)
    note = serving_note(svc, operation)
    with ExitStack() as stack:
        live = (
            stack.enter_context(
                Live(progress_view(operation, 0.0, note), console=console, auto_refresh=False)
            )
            if console.is_terminal
            else None
        )
        while operation.status in ("queued", "running"):
            left = None if timeout is None else timeout - (time.monotonic() - started)
            if left is not None and left <= 0:
                break
            time.sleep(POLL_SECONDS if left is None else min(POLL_SECONDS, left))
            operation = svc.operations.get(operation_id, None)
            note = serving_note(svc, operation)
            if live is not None:
                view = progress_view(operation, time.monotonic() - started, note)
                live.update(view, refresh=True)
    if live is None:
        console.print(progress_view(operation, time.monotonic() - started, note))
    return operation, note


@app.command("wait")
def wait(
    operation_id: OperationId,
    data_dir: DataDir = None,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Give up after this many seconds (exit 2)")
    ] = None,
) -> None:
    """Follow an operation until it ends: exit 0 if it succeeded, 1 if it failed, 2 on timeout."""
    console = output()
    with operator_services(data_dir) as svc:
        operation, note = follow(svc, operation_id, timeout, console)
    if operation.status == "failed":
        raise CascadeError(f"operation {operation.id} failed: {one_line(operation.error or '')}")
    if operation.status != "succeeded":
        why = f": {note}" if note else ""
        print(
            f"cascade: operation {operation.id} still {operation.status} after {timeout} s{why}",
            file=sys.stderr,
        )
        raise typer.Exit(2)
    console.print(f"operation {operation.id} succeeded in {seconds(operation.duration_s)}")
