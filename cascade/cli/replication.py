"""``cascade replication status``: every replication policy as ``GET
/v1/replication/policies`` shows it, read from the database: one row per policy and target
site, in sync or the names missing, extra and changed at the audit's last look, and the
policy's last job. May import cascade.cli (ops' console helpers) and cascade.replication."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from cascade.cli.ops import operator_services, output, styled, when
from cascade.cli.options import DataDir
from cascade.replication.policies import PolicyService
from cascade.replication.schemas import PolicyOut, SiteDrift

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


def policy_table(policies: list[PolicyOut]) -> Table:
    table = Table("policy", "kind", "rule", "status", "site", "in sync", "drift", "last job")
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
                last,
            )
    return table
