"""``cascade replication status | job``: every replication policy as ``GET
/v1/replication/policies`` shows it, read from the database: one row per policy and target
site, in sync or the names missing, extra and changed at the audit's last look, what the
site refused (how many times in a row, the passes left before the next try, the last error),
and the policy's last job; and one job's items (per site and resource: action, status,
percent of an image's bytes, and the bytes sent, which count again what an interruption
made it send twice), followed with a Rich progress bar per item with ``--follow``.
May import cascade.cli (ops' console helpers) and cascade.replication."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from cascade.cli.ops import operator_services, output, styled, when
from cascade.cli.options import DataDir
from cascade.replication.policies import PolicyService
from cascade.replication.schemas import FailureOut, JobOut, PolicyOut, SiteDrift

POLL_SECONDS = 0.5

app = typer.Typer(help="Replication policies: drift per site.", no_args_is_help=True)


@app.command("status")
def status(
    data_dir: DataDir = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the policies as JSON last")
    ] = False,
) -> None:
    """Show each policy's target sites: in sync, or what is missing, extra or changed."""
    with operator_services(data_dir) as svc:
        policies = PolicyService(svc.db, svc.operations).listing(None)
    console = output()
    console.print(policy_table(policies))
    console.print(f"{len(policies)} policies", highlight=False)
    if as_json:
        print(json.dumps([p.model_dump(mode="json") for p in policies]))


def site_state(drift: SiteDrift | None) -> str:
    """ "in sync", or each class of drift with its names; "not audited" before the first."""
    if drift is None:
        return "not audited"
    parts = [
        f"{name}: {', '.join(found)}"
        for name, found in (
            ("missing", drift.missing),
            ("extra", drift.extra),
            ("changed", drift.changed),
        )
        if found
    ]
    if drift.note:
        parts.append(drift.note)
    return "; ".join(parts) or "in sync"


def site_failing(failing: list[FailureOut]) -> str:
    """What the site refused, each: the resource, its failures in a row, the passes it
    waits before the audit tries again, and the last error."""
    return "; ".join(
        f"{f.name} ({f.failures} failed, {f.retry_in_passes} passes to wait): {f.error}"
        for f in failing
    )


def policy_table(policies: list[PolicyOut]) -> Table:
    table = Table(
        "policy", "kind", "rule", "status", "site", "in sync", "drift", "failing", "last job"
    )
    for policy in policies:
        job = policy.last_job
        last = f"{job.status} ({job.reason}, {when(job.created_at)})" if job else "-"
        for site in policy.sites or ["-"]:
            drift = policy.drift.get(site)
            table.add_row(
                policy.id[:12],
                policy.kind,
                policy.conflict,
                styled(policy.status),
                site,
                str(drift.in_sync) if drift else "-",
                site_state(drift),
                site_failing(policy.failing.get(site, [])),
                last,
            )
    return table


@app.command("job")
def job(
    job_id: Annotated[str, typer.Argument(help="The job's id")],
    data_dir: DataDir = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Follow the job with a progress bar per item")
    ] = False,
) -> None:
    """Show a job's items per site and resource; --follow until the job ends."""
    with operator_services(data_dir) as svc:
        service = PolicyService(svc.db, svc.operations)
        found = service.job(job_id, None)
        if follow:
            found = follow_job(lambda: service.job(job_id, None))
    console = output()
    console.print(items_table(found))
    console.print(f"job {found.id}: {found.status} ({found.reason})", highlight=False)
    if found.error:
        console.print(found.error, highlight=False)


def follow_job(read: Callable[[], JobOut]) -> JobOut:
    """A Rich progress row per item (bytes for images) until the job ends."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}")
    ) as progress:
        rows: dict[str, TaskID] = {}
        while True:
            found = read()
            for item in found.items or []:
                key = f"{item.site} {item.name}"
                total, done = item.bytes_total or 1, item.bytes_done or 0
                if item.status in ("done", "drift"):
                    done = total
                if key not in rows:
                    rows[key] = progress.add_task(key, total=total, status=item.status)
                progress.update(rows[key], total=total, completed=done, status=item.status)
            if found.status in ("succeeded", "failed"):
                return found
            time.sleep(POLL_SECONDS)


def items_table(found: JobOut) -> Table:
    table = Table("site", "name", "action", "status", "progress", "sent", "id at the site", "error")
    for item in found.items or []:
        done = f"{item.percent:.0f}%" if item.percent is not None else "-"
        sent = f"{item.bytes_sent / (1 << 20):.1f} MiB" if item.bytes_sent is not None else "-"
        table.add_row(
            item.site,
            item.name,
            item.action,
            item.status,
            done,
            sent,
            item.target_id or "-",
            item.error or "",
        )
    return table
