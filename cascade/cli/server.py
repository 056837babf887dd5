"""``cascade init``, ``cascade db upgrade`` and ``cascade up``: a data dir made, migrated and
served (with its supervised workers). Each fails in one line, before anything starts, on a
missing or uninitialised data dir, an unusable key or schema, a busy port or an unreachable
fabric. May import any of Cascade's packages (it is the command line)."""

from __future__ import annotations

import json
import re
import signal
import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cascade.cli.options import DataDir
from cascade.config import Settings, config_file, load_settings
from cascade.errors import CascadeError
from cascade.identity.bootstrap import move_identity_endpoint
from cascade.services import Services, initialize

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)

console = Console(soft_wrap=True)  # one line stays one line in a log file
PublicUrl = Annotated[
    str | None,
    typer.Option(
        help="Base URL clients reach the API at, listed in the identity catalog "
        "[env CASCADE_PUBLIC_URL, default http://<host>:<port>]"
    ),
]


def settings_from(data_dir: Path | None, **overrides: object) -> Settings:
    return load_settings(data_dir=data_dir, **overrides)


def require_initialised(settings: Settings) -> None:
    """One line naming what is missing when the data dir is not what ``cascade init`` made."""
    where = settings.data_dir
    run_init = f"run 'cascade init --data-dir {where}' first"
    if where.exists() and not where.is_dir():
        raise CascadeError(f"data dir {where} is not a directory")
    if not where.is_dir():
        raise CascadeError(f"data dir {where} is not initialised (it does not exist): {run_init}")
    needed = [settings.key_repository, where / "credential.key"]
    if settings.database_url is None:
        needed.append(where / "cascade.db")
    missing = [path.name for path in needed if not path.exists()]
    if missing:
        raise CascadeError(
            f"data dir {where} is not initialised (no {', '.join(missing)}): {run_init}"
        )


def init(
    data_dir: DataDir = None,
    admin_password: Annotated[
        str | None,
        typer.Option(help="Admin password [env CASCADE_ADMIN_PASSWORD]; generated if unset."),
    ] = None,
    public_url: PublicUrl = None,
) -> None:
    """Create the data dir, migrate the database, create the key repository, bootstrap admin
    and list Cascade's identity endpoint (at the public URL) in the catalog."""
    settings = settings_from(data_dir, public_url=public_url)
    services = Services(settings)
    try:
        result = initialize(services, admin_password or settings.admin_password)
    finally:
        services.close()
    console.print(f"data dir      {settings.data_dir.resolve()}")
    console.print(f"database      {services.db.engine.url.render_as_string(hide_password=True)}")
    console.print(f"fernet keys   {settings.key_repository.resolve()}")
    console.print(f"identity      {settings.effective_public_url}/identity/v3 (in the catalog)")
    if public_url is not None:
        console.print(f"public URL    remembered in {_remember_public_url(settings)}")
    if result.generated_password:
        console.print(f"admin user    admin (project admin), password: {result.generated_password}")
        console.print("[yellow]The password is shown only this once.[/yellow]")
    elif result.admin_created:
        console.print("admin user    admin (project admin), password as given")
    else:
        console.print("admin user    already bootstrapped, left unchanged")


def _remember_public_url(settings: Settings) -> Path:
    """Write ``public_url`` to the data dir's TOML file (a line replaced or added), so that
    ``cascade up`` lists the same URL in the catalog without the flag."""
    path = config_file(settings.data_dir)
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if not re.match(r"\s*public_url\s*=", line)]
    kept.append(f"public_url = {json.dumps(settings.effective_public_url)}")
    path.write_text("\n".join(kept) + "\n")
    return path


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Migrate an existing database to the newest schema."""
    from cascade.db.migrate import upgrade
    from cascade.engine.queue import prepare

    settings = settings_from(data_dir)
    require_initialised(settings)
    services = Services(settings)
    try:
        revision = upgrade(services.db)
        prepare(services.db, services.settings)
        console.print(f"database at revision {revision}")
    finally:
        services.close()


def up(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Listen address [default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [default 5000]")] = None,
    public_url: PublicUrl = None,
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

    settings = settings_from(data_dir, host=host, port=port, public_url=public_url)
    require_initialised(settings)
    _check_port(settings.host, settings.port)
    _check_fabric(settings.fabric_url)
    services = Services(settings)
    _check_state(services)
    _follow_public_url(services)
    supervisor = Supervisor(workers, settings.data_dir, settings.data_dir / "logs")
    supervisor.start()
    # uvicorn re-raises the SIGTERM it caught once it has shut down: exit through the
    # finally below, so the workers are stopped and waited for.
    signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        serve(services)
    finally:
        supervisor.stop()


def _check_port(host: str, port: int) -> None:
    """Fail in one line when the address cannot be listened on, before the workers start and
    before uvicorn announces anything (it binds only after its startup messages)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as error:
            reason = error.strerror or str(error)
            raise CascadeError(f"cannot listen on {host}:{port}: {reason}") from error


def _check_state(services: Services) -> None:
    """Fail in one line, before serving, on a data dir whose keys or schema are unusable
    (they are otherwise read at the first request)."""
    from cascade.db.migrate import current, head

    services.keys.read_all()  # KeyRepositoryError names the missing or malformed key
    services.credentials.check()
    at, newest = current(services.db), head()
    if at != newest:
        raise CascadeError(
            f"the database is at revision {at}, this Cascade needs {newest}: run "
            f"'cascade db upgrade --data-dir {services.settings.data_dir}'"
        )


def _follow_public_url(services: Services) -> None:
    """Keep Cascade's identity endpoint in the catalog where this server is reached (a new
    --port, --public-url or CASCADE_PUBLIC_URL since ``cascade init``), saying so in one line."""
    settings = services.settings
    url = f"{settings.effective_public_url}/identity/v3"
    replaced = move_identity_endpoint(services.db, settings.region, url)
    if replaced is not None:
        console.print(
            f"catalog: identity endpoint of region {settings.region} is now {url} (was {replaced})"
        )


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
