"""``cascade identity-replica``: a site's read-only identity replica, following the master;
at the master, ``cascade identity status`` (how far behind each replica is, when it last
polled, which key set it proved it holds), ``cascade identity rotate-keys`` and
``cascade identity forget-replica``.

It initialises its own data directory (database, key repository), checks that the master
accepts its credentials (a refusal is one line and exit 1; an unreachable master is not an
error: it serves what it has), bootstraps from the master's snapshot, follows the master's
change log in a thread and serves Keystone-compatible identity (``/identity/v3``) from its
own copy, so tokens keep validating and identity reads keep working while the master is
unreachable. Identity writes are refused with an error naming the master. SIGINT or SIGTERM
stops it at once, whatever the follower waits on; a master that later refuses its
credentials for good stops it too, with one line and exit 1.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from cascade.cli.ops import operator_services, output, when
from cascade.cli.options import DataDir
from cascade.config import load_settings
from cascade.errors import BadRequest, Unavailable
from cascade.identity import changelog
from cascade.identity.changelog import ReplicaLag
from cascade.identity.follower import Follower, Following, Master
from cascade.identity.rotation import RotationReport, SiteKeys, wanted_key_set
from cascade.services import Services, initialize

app = typer.Typer(help="Identity replication.", no_args_is_help=True)
log = logging.getLogger(__name__)
STOP_S = 1.0  # at most this long for a local write under way when the replica stops


@app.command("status")
def status(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON last")] = False,
) -> None:
    """At the master: each replica's last applied change, changes behind, how stale its copy
    may be (lag), how long ago it last polled, and whether it holds the current keys."""
    with operator_services(data_dir) as svc, svc.db.session() as session:
        head = changelog.head(session)
        replicas = changelog.replicas(session)
    wanted = wanted_key_set(svc.keys, svc.staged_keys)
    table = Table("replica", "applied seq", "behind", "lag s", "last poll", "keys (proven)")
    for replica in replicas:
        table.add_row(
            replica.name,
            str(replica.seq),
            str(replica.behind),
            f"{replica.lag_s:.2f}",
            _last_poll(replica),
            "current" if replica.key_set == wanted else "[red]not current[/red]",
        )
    console = output()
    console.print(table)
    silent = sum(1 for r in replicas if r.silent)
    summary = f"change log head: {head}; {len(replicas)} replicas"
    if silent:
        summary += (
            f", [red]{silent} silent[/red] (no poll for over {changelog.SILENT_AFTER_S:.0f} s: "
            "down, cut off or stopped)"
        )
    console.print(summary, highlight=False)
    if as_json:
        listed = [{**vars(r), "seen_at": r.seen_at.isoformat()} for r in replicas]
        print(json.dumps({"head": head, "keys": wanted, "replicas": listed}))


def _last_poll(replica: ReplicaLag) -> str:
    ago = f"{_age(replica.seen_s)} ago ({when(replica.seen_at)})"
    return f"[red]silent: {ago}[/red]" if replica.silent else ago


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@app.command("rotate-keys")
def rotate_keys(
    data_dir: DataDir = None,
    timeout: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for every site to hold the new keys")
    ] = 60.0,
    force: Annotated[
        bool,
        typer.Option(
            help="Promote even if a site does not hold the new keys (says what it will refuse)"
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON last")] = False,
) -> None:
    """At the master: stage the next Fernet key set, wait until every site holds it, then
    promote it. Exits 1 (nothing promoted) when a site did not acknowledge it in time."""
    console = output()
    with operator_services(data_dir) as svc, Progress(console=console) as progress:
        task = progress.add_task("sites holding the new keys", total=None)

        def show(report: RotationReport) -> None:
            progress.update(task, total=report.sites, completed=len(report.holding))

        report = svc.key_rotation().rotate(timeout, force=force, progress=show)
    _print_rotation(console, report)
    if as_json:
        print(json.dumps({**asdict(report), "missing": [_site(m) for m in report.missing]}))
    if not report.promoted:
        raise typer.Exit(1)


def _site(site: SiteKeys) -> dict[str, Any]:
    return {**asdict(site), "seen_at": site.seen_at.isoformat()}


def _print_rotation(console: Console, report: RotationReport) -> None:
    held = f"{len(report.holding)}/{report.sites} sites hold key set {report.target}"
    if report.promoted and not report.forced:
        console.print(f"promoted key {report.primary}: {held}", highlight=False)
        return
    table = Table("site", "proved it holds key set", "last poll", "refuses after promotion")
    for site in report.missing:
        table.add_row(site.name, site.key_set or "-", when(site.seen_at), site.refuses)
    console.print(table)
    if report.forced:
        console.print(f"[yellow]forced[/yellow]: promoted key {report.primary}; {held}")
    else:
        console.print(
            f"[red]not promoted[/red]: {held}; the new set stays staged. Bring the sites "
            "above back, or forget one taken out of service, and run again (or --force)."
        )


@app.command("forget-replica")
def forget_replica(
    name: Annotated[str, typer.Argument(help="The replica's name in `cascade identity status`")],
    data_dir: DataDir = None,
) -> None:
    """At the master: forget a replica taken out of service, so rotations stop waiting for it."""
    with operator_services(data_dir) as svc, svc.db.session() as session:
        changelog.forget_replica(session, name)
    output().print(f"forgot replica {name}")


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
    region: Annotated[
        str | None,
        typer.Option(
            help="This site's region: the master's catalog then lists this replica as the "
            "region's identity endpoint (clients select it with --os-region-name)"
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(help="URL clients reach this replica at [default http://HOST:PORT]"),
    ] = None,
) -> None:
    """Serve a read-only identity replica of MASTER, following its change log."""
    from cascade.api.app import serve

    if not password:
        raise BadRequest("the master's password is needed: set CASCADE_MASTER_PASSWORD")
    # Until uvicorn takes over (and again once it hands them back, re-raising what it caught):
    # SIGINT and SIGTERM end the command quietly, through the finally blocks below.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop_quietly)
    master_url = master.rstrip("/")
    settings = load_settings(
        data_dir=data_dir,
        host=host,
        port=port,
        public_url=public_url,
        identity_master_url=master_url,
    )
    services = Services(settings)
    initialize(services, None)
    follower = Follower(
        services.db,
        services.keys,
        services.node_key,
        Master(master_url, username, password, project),
        name or f"{socket.gethostname()}:{settings.port}",
        on_keys=services.tokens.reload_keys,
        endpoint=(region, f"{settings.effective_public_url}/identity/v3") if region else None,
    )
    try:
        follower.check_login()  # refused credentials: one line, exit 1, nothing served
    except Unavailable as error:
        log.warning("identity replica: %s; serving what this replica has meanwhile", error)
    following = Following(follower, on_give_up=lambda _failure: _stop_serving())
    try:
        serve(services)
    except StopRequested:  # SIGINT / SIGTERM, re-raised by uvicorn after its shutdown
        pass
    finally:
        following.stop(STOP_S)
    if following.failure is not None:
        raise following.failure


class StopRequested(SystemExit):
    """SIGINT or SIGTERM: a normal stop (exit 0, no traceback)."""


def _stop_quietly(_signum: int, _frame: object) -> None:
    raise StopRequested(0)


def _stop_serving() -> None:
    """From the follower's thread: make the server shut down as on SIGTERM."""
    os.kill(os.getpid(), signal.SIGTERM)
