"""``cascade fabric status``: the network fabric's hosts as ``GET /v1/fabric/hosts`` shows
them, read from the database: goal and applied revisions, networks behind, last
acknowledgement, whether the security rules it holds are in force, and how many hosts are
converged, lagging, or holding rules their dataplane does not enforce."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from cascade.cli.ops import operator_services, output, when
from cascade.cli.options import DataDir

app = typer.Typer(help="The network fabric: hosts and their convergence.", no_args_is_help=True)


@app.command("status")
def status(
    data_dir: DataDir = None,
    lagging: Annotated[
        bool, typer.Option("--lagging", help="Only hosts behind their goal")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="Hosts to list, by name")] = 1000,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the hosts and counts as JSON last")
    ] = False,
) -> None:
    """Show each fabric host's goal and applied revisions and whether it converged."""
    with operator_services(data_dir) as svc:
        hosts = svc.fabric.tracking.hosts(lagging_only=lagging, limit=limit)
        converged, behind = svc.fabric.tracking.counts()
        unenforced = svc.fabric.tracking.rules_not_enforced()
    console = output()
    if hosts:
        console.print(hosts_table(hosts))
    console.print(
        f"{converged + behind} hosts: {converged} converged, {behind} lagging, "
        f"{unenforced} holding security rules they do not enforce",
        highlight=False,
    )
    if as_json:
        listed = [{**host, "acked_at": _iso(host["acked_at"])} for host in hosts]
        counts = {"converged": converged, "lagging": behind, "rules_not_enforced": unenforced}
        print(json.dumps({"hosts": listed, **counts}))


def hosts_table(hosts: list[dict[str, Any]]) -> Table:
    table = Table(
        "host",
        "tunnel ip",
        "goal rev",
        "applied rev",
        "networks behind",
        "converged",
        "rules enforced",
        "last ack",
    )
    table.columns[0].no_wrap = True
    for host in hosts:
        table.add_row(
            host["name"],
            host["tunnel_ip"],
            str(host["revision"]),
            str(host["applied_revision"]),
            str(host["networks_behind"]),
            _yes_no(host["converged"]),
            _yes_no(host["rules_enforced"]),
            when(host["acked_at"]),
        )
    return table


def _yes_no(value: bool) -> Text:
    return Text("yes", style="green") if value else Text("no", style="red")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
