"""``cascade worker``: run operations, joined to the cluster through the database."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer

from cascade.cli.options import DataDir
from cascade.config import load_settings
from cascade.engine.membership import default_executor_id
from cascade.errors import CascadeError


def worker(
    data_dir: DataDir = None,
    executor_id: Annotated[
        str | None,
        typer.Option(
            help="This worker's id in the cluster; keep it when restarting a worker so it "
            "resumes its own work at once [default: host-pid]"
        ),
    ] = None,
) -> None:
    """Run operations from the durable queue until stopped (SIGTERM or Ctrl-C): the worker
    ends within about a second whatever it waits on, and another worker resumes what it was
    running."""
    stop = threading.Event()

    def request_stop(_signum: int, _frame: Any) -> None:
        stop.set()

    # First, so that a signal while starting up is a stop too, not a KeyboardInterrupt.
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    import cascade.workloads  # noqa: F401 - registers every handler with DBOS
    from cascade.engine.worker import run_worker
    from cascade.services import Services

    settings = load_settings(data_dir=data_dir)
    if settings.database_url is None and not (settings.data_dir / "cascade.db").exists():
        raise CascadeError(f"{settings.data_dir} is not initialised: run 'cascade init' first")
    if stop.is_set():
        return
    run_worker(Services(settings), executor_id or default_executor_id(), stop)
