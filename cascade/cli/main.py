"""Entry point: ``cascade init | db upgrade | up | worker | agent | status |
op list|show|wait | fabric status | demo | site-sim | fleet-sim | bench ...``.

Every failure a user can cause ends as one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from cascade.cli import (
    agent,
    bench,
    demo,
    fabric,
    fleet_sim,
    identity,
    ops,
    site_sim,
    status,
    worker,
)
from cascade.cli.options import DataDir
from cascade.config import Settings, load_settings
from cascade.errors import CascadeError
from cascade.services import Services, initialize

app = typer.Typer(
    name="cascade",
    help="Cascade: one control plane above many OpenStack sites.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(bench.app, name="bench")
app.add_typer(ops.app, name="op")
app.add_typer(fabric.app, name="fabric")
app.command("status")(status.status)
app.command("demo")(demo.demo)
app.command("site-sim")(site_sim.site_sim)
app.command("worker")(worker.worker)
app.command("agent")(agent.agent)
app.command("fleet-sim")(fleet_sim.fleet_sim)
app.command("identity-replica")(identity.identity_replica)
app.add_typer(identity.app, name="identity")

console = Console()


def settings_from(data_dir: Path | None, **overrides: object) -> Settings:
    return load_settings(data_dir=data_dir, **overrides)


@app.command()
def init(
    data_dir: DataDir = None,
    admin_password: Annotated[
        str | None,
        typer.Option(help="Admin password [env CASCADE_ADMIN_PASSWORD]; generated if unset."),
    ] = None,
) -> None:
    """Create the data dir, migrate the database, create the key repository, bootstrap admin."""
    settings = settings_from(data_dir)
    services = Services(settings)
    try:
        result = initialize(services, admin_password or settings.admin_password)
    finally:
        services.close()
    console.print(f"data dir      {settings.data_dir.resolve()}")
    console.print(f"database      {services.db.engine.url.render_as_string(hide_password=True)}")
    console.print(f"fernet keys   {settings.key_repository.resolve()}")
    if result.generated_password:
        console.print(f"admin user    admin (project admin), password: {result.generated_password}")
        console.print("[yellow]The password is shown only this once.[/yellow]")
    elif result.admin_created:
        console.print("admin user    admin (project admin), password as given")
    else:
        console.print("admin user    already bootstrapped, left unchanged")


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Migrate an existing database to the newest schema."""
    from cascade.db.migrate import upgrade
    from cascade.engine.queue import prepare

    services = Services(settings_from(data_dir))
    try:
        revision = upgrade(services.db)
        prepare(services.db, services.settings)
        console.print(f"database at revision {revision}")
    finally:
        services.close()


@app.command()
def up(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Listen address [default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [default 5000]")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=0, max=256, help="Worker processes to run and restart if they die [default 0]"
        ),
    ] = 0,
) -> None:
    """Serve the API (native /v1 and Keystone-compatible /identity/v3), and with --workers N
    supervise N worker processes beside it."""
    from cascade.api.app import serve
    from cascade.engine.supervisor import Supervisor

    settings = settings_from(data_dir, host=host, port=port)
    if not settings.key_repository.exists():
        raise CascadeError(f"{settings.data_dir} is not initialised: run 'cascade init' first")
    _check_fabric(settings.fabric_url)
    services = Services(settings)
    supervisor = Supervisor(workers, settings.data_dir, settings.data_dir / "logs")
    supervisor.start()
    # uvicorn re-raises the SIGTERM it caught once it has shut down: exit through the
    # finally below, so the workers are stopped and waited for.
    signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        serve(services)
    finally:
        supervisor.stop()


def _check_fabric(url: str) -> None:
    """Fail in one line, before serving, when the fabric's NATS server cannot be reached
    (the app's startup would otherwise end in uvicorn's traceback)."""
    if url == "memory":
        return
    import asyncio

    from cascade.fabric.transports import open_transport

    async def probe() -> None:
        transport = await open_transport(url)
        await transport.close()

    asyncio.run(probe())


def _exit_quietly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def main() -> None:
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:  # typer.Exit(n) comes back as n in this mode
            sys.exit(code)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        print("cascade: aborted", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as error:
        format_message = getattr(error, "format_message", None)
        message = format_message() if format_message else str(error)
        if message:  # empty when the help was shown instead
            print(f"cascade: {message}", file=sys.stderr)
        sys.exit(getattr(error, "exit_code", 2))
    except CascadeError as error:
        print(f"cascade: {error.message}", file=sys.stderr)
        sys.exit(1)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        print(f"cascade: invalid setting {where}: {first['msg']}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:
        print(
            f"cascade: {error.strerror or error}: {error.filename or ''}".rstrip(": "),
            file=sys.stderr,
        )
        sys.exit(1)
