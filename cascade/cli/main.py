"""Entry point: ``cascade init | db upgrade | up | worker | agent | status |
op list|show|wait | fabric status | protect ... | demo | site-sim | fleet-sim | bench ...``.

A command's module is imported only when that command runs (``COMMANDS``): a site-sim or a
worker does not pay for the benchmarks' or the demo's imports at every start. Every failure
a user can cause ends as one line on stderr and a non-zero exit: a missing or uninitialised
data dir, a broken database, a busy port (found before anything starts).
"""

from __future__ import annotations

import importlib
import signal
import sys
import tomllib
from typing import cast

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from typer.core import TyperCommand, TyperGroup

from cascade.errors import CascadeError

COMMANDS = {  # name -> (module, attribute): a typer.Typer (a group) or a command function
    "init": ("cascade.cli.server", "init"),
    "db": ("cascade.cli.server", "db_app"),
    "up": ("cascade.cli.server", "up"),
    "worker": ("cascade.cli.worker", "worker"),
    "status": ("cascade.cli.status", "status"),
    "op": ("cascade.cli.ops", "app"),
    "agent": ("cascade.cli.agent", "agent"),
    "fabric": ("cascade.cli.fabric", "app"),
    "identity": ("cascade.cli.identity", "app"),
    "identity-replica": ("cascade.cli.identity", "identity_replica"),
    "protect": ("cascade.cli.protect", "app"),
    "replication": ("cascade.cli.replication", "app"),
    "site-sim": ("cascade.cli.site_sim", "site_sim"),
    "fleet-sim": ("cascade.cli.fleet_sim", "fleet_sim"),
    "demo": ("cascade.cli.demo", "demo"),
    "bench": ("cascade.cli.bench", "app"),
}


class LazyCommands(TyperGroup):
    """The top-level group: lists ``COMMANDS`` and imports one only when it is asked for."""

    def list_commands(self, ctx: object) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: object, cmd_name: str) -> TyperCommand | TyperGroup | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name]
        target = getattr(importlib.import_module(module), attribute)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # imported: Ctrl-C is its own
        command: TyperCommand | TyperGroup
        if isinstance(target, typer.Typer):
            command = typer.main.get_group(target)
        else:
            single = typer.Typer()
            single.command(cmd_name)(target)
            # one command and no callback: typer makes it a command, not a group
            command = cast(TyperCommand, typer.main.get_command(single))
        command.name = cmd_name
        return command


app = typer.Typer(
    cls=LazyCommands,
    name="cascade",
    help="Cascade: one control plane above many OpenStack sites.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def cascade() -> None:
    """Cascade: one control plane above many OpenStack sites."""


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
    except SQLAlchemyError as error:
        cause = str(getattr(error, "orig", None) or error).splitlines()[0]
        print(f"cascade: database error: {cause}", file=sys.stderr)
        sys.exit(1)
    except tomllib.TOMLDecodeError as error:
        print(f"cascade: the settings file is not valid TOML: {error}", file=sys.stderr)
        sys.exit(2)
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
