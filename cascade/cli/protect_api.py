"""What every ``cascade protect`` command stands on: a ``/v1`` call whose refusal is a
``CascadeError`` carrying the API's own message, polling until something ends (an operation,
a checkpoint, a restore), one Rich progress row per volume or server while it runs, and the
tables the commands print. ``cascade.cli.protect`` (plans, checkpoints, the commands) and
``cascade.cli.protect_restore`` (restores) both build on it; it imports neither.

May import cascade.cli (clients, ops' console helpers) and cascade.errors.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from rich import box
from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from cascade.cli.clients import SessionClient
from cascade.cli.ops import output
from cascade.errors import CascadeError

Json = dict[str, Any]
Row = tuple[RenderableType, ...]
POLL_SECONDS = 0.25
TIMEOUT_SECONDS = 900.0
MB = 1 << 20
DONE = {"checkpoint": ("available", "failed"), "restore": ("completed", "failed")}
BLANK: Json = {"count": "", "detail": "", "status": ""}  # a progress row's text columns


def call(api: SessionClient, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
    """A ``/v1`` call; any other status than ``expect`` is a ``CascadeError`` carrying the
    API's message."""
    data = b"" if body is None else json.dumps(body).encode()
    reply = api.request(method, path, {"Content-Type": "application/json"}, data)
    if reply.status != expect:
        try:
            message = reply.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = reply.body[:200].decode(errors="replace")
        raise CascadeError(f"{message} ({method} {path}: {reply.status})")
    return reply.json() if reply.body else None


def poll(read: Callable[[], Json], finished: Callable[[Json], bool], what: str) -> Json:
    """``read()`` every ``POLL_SECONDS`` until ``finished``; a CascadeError after the timeout."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        found = read()
        if finished(found):
            return found
        if time.monotonic() > deadline:
            raise CascadeError(f"{what} did not finish within {TIMEOUT_SECONDS:.0f} s")
        time.sleep(POLL_SECONDS)


def wait_operation(api: SessionClient, operation_id: str) -> Json:
    """The operation once it succeeded (a failure: its error, one line)."""
    operation = poll(
        lambda: call(api, "GET", f"/v1/operations/{operation_id}")["operation"],
        lambda op: op["status"] in ("succeeded", "failed"),
        f"operation {operation_id}",
    )
    if operation["status"] == "failed":
        raise CascadeError(f"operation {operation_id} failed: {operation['error']}")
    return operation


def server_names(api: SessionClient) -> dict[str, str]:
    return {s["id"]: s["name"] for s in call(api, "GET", "/v1/servers")["servers"]}


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}", style="bold"),
        BarColumn(bar_width=30),
        TextColumn("{task.fields[count]}"),
        TextColumn("{task.fields[detail]}"),
        TextColumn("{task.fields[status]}"),
        console=console,
    )


class Rows:
    """One progress row per key, added the first time it is seen; servers by name."""

    def __init__(self, progress: Progress, api: SessionClient) -> None:
        self.progress, self.api = progress, api
        self.names = server_names(api)
        self.ids: dict[str, TaskID] = {}

    def show(self, key: str, label: str, done: int, total: int, **fields: Any) -> None:
        """``fields``: the row's status, count and detail."""
        if key not in self.ids:
            self.ids[key] = self.progress.add_task(label, total=None, **BLANK)
        self.progress.update(self.ids[key], completed=done, total=max(total, 1), **fields)

    def volume(self, volume: Json) -> str:
        """A checkpoint's volume as its server's name and its device there."""
        return f"{self.names.get(volume['server'], volume['server'])} {volume['device']}"


def follow(
    api: SessionClient, kind: str, ident: str, console: Console, draw: Callable[[Rows, Json], None]
) -> Json:
    """Poll ``/v1/{kind}s/{ident}`` until it ends, ``draw(rows, it)`` after each read."""
    with _progress(console) as progress:
        rows = Rows(progress, api)

        def read() -> Json:
            found: Json = call(api, "GET", f"/v1/{kind}s/{ident}")[kind]
            draw(rows, found)
            return found

        return poll(read, lambda found: found["status"] in DONE[kind], f"{kind} {ident}")


def table(columns: str, rows: list[Row], title: str | None = None) -> Table:
    """A table of ``columns`` (names separated by commas) holding ``rows``."""
    made = Table(*columns.split(","), title=title, box=box.SIMPLE_HEAD)
    for row in rows:
        made.add_row(*row)
    return made


def listing(columns: str, rows: list[Row]) -> None:
    """A command's list on stdout: the table, or "none"."""
    output().print(table(columns, rows) if rows else "none")
