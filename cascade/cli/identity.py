"""``cascade identity-replica``: a site's read-only identity replica, following the master;
``cascade identity status``: at the master, how far behind each replica is.

It initialises its own data directory (database, key repository), bootstraps from the
master's snapshot, follows the master's change log in a thread and serves Keystone-
compatible identity (``/identity/v3``) from its own copy, so tokens keep validating and
identity reads keep working while the master is unreachable. Identity writes are refused
with an error naming the master.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Annotated

import typer
from rich.table import Table

from cascade.cli.ops import operator_services, output, when
from cascade.cli.options import DataDir
from cascade.config import load_settings
from cascade.errors import BadRequest
from cascade.identity import changelog
from cascade.identity.follower import Follower, Master
from cascade.services import Services, initialize

app = typer.Typer(help="Identity replication.", no_args_is_help=True)


@app.command("status")
def status(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON last")] = False,
) -> None:
    """At the master: each replica's last applied change, changes behind and lag in seconds."""
    with operator_services(data_dir) as svc, svc.db.session() as session:
        head = changelog.head(session)
        replicas = changelog.replicas(session)
    table = Table("replica", "applied seq", "behind", "lag s", "last poll")
    for replica in replicas:
        table.add_row(
            replica.name,
            str(replica.seq),
            str(replica.behind),
            f"{replica.lag_s:.2f}",
            when(replica.seen_at),
        )
    console = output()
    console.print(table)
    console.print(f"change log head: {head}; {len(replicas)} replicas", highlight=False)
    if as_json:
        listed = [{**vars(r), "seen_at": r.seen_at.isoformat()} for r in replicas]
        print(json.dumps({"head": head, "replicas": listed}))


def identity_replica(
    master: Annotated[str, typer.Option(help="The master's URL, e.g. http://10.0.0.1:5000")],
    data_dir: DataDir = None,
    username: Annotated[str, typer.Option(help="An admin user at the master")] = "admin",
    password: Annotated[
        str | None,
        typer.Option(
            envvar="CASCADE_MASTER_PASSWORD",
            help="That user's password [env CASCADE_MASTER_PASSWORD]",
            show_default=False,
        ),
    ] = None,
    project: Annotated[str, typer.Option(help="The admin project at the master")] = "admin",
    name: Annotated[
        str | None,
        typer.Option(help="This replica's name in the master's lag report [default: host:port]"),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Listen address [default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [default 5000]")] = None,
) -> None:
    """Serve a read-only identity replica of MASTER, following its change log."""
    from cascade.api.app import serve

    if not password:
        raise BadRequest("the master's password is needed: set CASCADE_MASTER_PASSWORD")
    master_url = master.rstrip("/")
    settings = load_settings(
        data_dir=data_dir, host=host, port=port, identity_master_url=master_url
    )
    services = Services(settings)
    initialize(services, None)
    follower = Follower(
        services.db,
        services.keys,
        Master(master_url, username, password, project),
        name or f"{socket.gethostname()}:{settings.port}",
        on_keys=services.tokens.reload_keys,
    )
    stop = threading.Event()
    thread = threading.Thread(target=follower.run, args=(stop,), name="follower", daemon=True)
    thread.start()
    try:
        serve(services)
    finally:
        stop.set()
        thread.join(timeout=15)
