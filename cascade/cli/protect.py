"""``cascade protect plans | plan create | checkpoint | checkpoints | restore | restores``:
protection plans, checkpoints and restores (issue 16) of a running Cascade, through its
``/v1`` API over one keystoneauth1 session (``--url``, ``--username``, ``--password``,
``--project``, or their ``CASCADE_*`` variables). ``checkpoint`` and ``restore`` follow what
they started with a Rich progress, one row per volume (and per restored server), and end with
the freeze window or the RTO; ``plans`` shows each plan's RPO. A refusal of the API is one line
naming what is wrong (the API's own message), exit 1.

``create_plan``, ``take_checkpoint`` and ``run_restore`` are what ``cascade demo`` runs too.
May import cascade.cli (clients, ops' console helpers), cascade.identity (the login plugin of
Cascade's identity) and cascade.errors.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from cascade.cli.clients import SessionClient, login
from cascade.cli.ops import output, seconds, styled
from cascade.errors import CascadeError, present
from cascade.identity.follower import Master

app = typer.Typer(no_args_is_help=True)  # its help: the docstring of connection
plan_app = typer.Typer(help="Protection plans.", no_args_is_help=True)
app.add_typer(plan_app, name="plan")

Json = dict[str, Any]
Row = tuple[RenderableType, ...]
POLL_SECONDS = 0.25
TIMEOUT_SECONDS = 900.0
MB = 1 << 20
DONE = {"checkpoint": ("available", "failed"), "restore": ("completed", "failed")}
BLANK: Json = {"count": "", "detail": "", "status": ""}  # a progress row's text columns


@app.callback()
def connection(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option(envvar="CASCADE_URL", help="Cascade's base URL")
    ] = "http://127.0.0.1:5000",
    username: Annotated[str, typer.Option(envvar="CASCADE_USERNAME", help="User")] = "admin",
    password: Annotated[
        str | None, typer.Option(envvar="CASCADE_PASSWORD", help="Password", show_default=False)
    ] = None,
    project: Annotated[
        str, typer.Option(envvar="CASCADE_PROJECT", help="Project the plans belong to")
    ] = "admin",
) -> None:
    """Protection (geo-redundancy): plans, checkpoints and restores, over the API."""
    ctx.obj = Master(url.rstrip("/"), username, password or "", project)


def _api(ctx: typer.Context) -> SessionClient:
    """Logged in now at Cascade's identity (v3 password, user and project in the default
    domain)."""
    cascade = present(ctx.find_object(Master), "the connection options")
    if not cascade.password:
        raise CascadeError("no password: give --password or set CASCADE_PASSWORD")
    return SessionClient(login(cascade.login()), cascade.url)


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


def find_plan(api: SessionClient, ref: str) -> Json:
    """The plan named or with the id ``ref``."""
    for plan in call(api, "GET", "/v1/protection-plans")["plans"]:
        if ref in (plan["id"], plan["name"]):
            return dict(plan)
    raise CascadeError(f"no protection plan {ref!r} (give its name or id)")


def create_plan(
    api: SessionClient,
    name: str,
    servers: list[str],
    target: str,
    retention: int | None = None,
    store: str | None = None,
) -> Json:
    """A plan protecting ``servers`` (freeze order) for site ``target``, once ACTIVE."""
    body: Json = {"name": name, "members": [{"server": s} for s in servers], "target_site": target}
    if retention is not None:
        body["retention"] = retention
    if store is not None:
        body["chunk_store"] = store
    accepted = call(api, "POST", "/v1/protection-plans", body, expect=202)
    wait_operation(api, accepted["operation"]["id"])
    plan: Json = call(api, "GET", f"/v1/protection-plans/{accepted['plan']['id']}")["plan"]
    return plan


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


def _checkpoint_rows(rows: Rows, checkpoint: Json) -> None:
    status = checkpoint["status"]
    ended = int(status in DONE["checkpoint"])
    rows.show("checkpoint", f"checkpoint {checkpoint['id'][-8:]}", ended, 1, status=status)
    for volume in checkpoint["volumes"]:
        available = volume["status"] == "available"
        changed = volume["changed_blocks"]
        rows.show(
            volume["volume"],
            rows.volume(volume),
            max(changed, 1) if available else volume["done_blocks"],
            changed,
            status=volume["status"],
            count=f"{volume['done_blocks']}/{changed} blocks",
            detail=f"{volume['read_bytes'] / MB:.1f} MB read, "
            f"{volume['stored_bytes'] / MB:.1f} MB stored",
        )


def take_checkpoint(api: SessionClient, plan: Json, console: Console) -> Json:
    """Start a checkpoint of ``plan`` and follow it to its end: a progress row per volume,
    then a table and the freeze window. A failed checkpoint is a CascadeError."""
    accepted = call(api, "POST", f"/v1/protection-plans/{plan['id']}/checkpoints", expect=202)
    checkpoint_id = accepted["checkpoint"]["id"]
    console.print(f"checkpoint {checkpoint_id} of plan {plan['name']} started")
    done = follow(api, "checkpoint", checkpoint_id, console, _checkpoint_rows)
    if done["status"] == "failed":
        raise CascadeError(f"checkpoint {checkpoint_id} failed: {done['error']}")
    console.print(checkpoint_table(done, server_names(api)))
    console.print(
        f"consistency point {done['consistency_point']}; servers frozen "
        f"{seconds(done['freeze_window_s'])} (freeze window); backed up at {done['backed_up_at']}"
    )
    return done


def table(columns: str, rows: list[Row], title: str | None = None) -> Table:
    """A table of ``columns`` (names separated by commas) holding ``rows``."""
    made = Table(*columns.split(","), title=title, box=box.SIMPLE_HEAD)
    for row in rows:
        made.add_row(*row)
    return made


def checkpoint_table(checkpoint: Json, names: dict[str, str]) -> Table:
    rows: list[Row] = [
        (
            names.get(v["server"], v["server"]),
            v["device"],
            v["volume"],
            str(v["changed_blocks"]),
            f"{v['read_bytes'] / MB:.1f}",
            f"{v['stored_bytes'] / MB:.1f}",
            str(v["chunks"]),
            styled(v["status"]),
        )
        for v in checkpoint["volumes"]
    ]
    columns = "server,device,volume,changed blocks,MB read,MB stored,chunks,status"
    return table(columns, rows, f"checkpoint {checkpoint['id']}")


def _restore_rows(rows: Rows, restore: Json, volumes: dict[str, Json]) -> None:
    """A row per volume (``volumes``: the checkpoint's, by id), then per server."""
    for source, volume in restore["volumes"].items():
        written, blocks = volume.get("written", 0), volume.get("blocks", 0)
        rows.show(
            source,
            rows.volume(volumes[source]),
            written,
            blocks,
            status="verified ✓" if volume.get("verified") else "writing",
            count=f"{written}/{blocks} blocks written",
        )
    for source, restored in restore["servers"].items():
        status = call(rows.api, "GET", f"/v1/servers/{restored}")["server"]["status"]
        name = f"server {rows.names.get(source, source)}"
        rows.show(restored, name, int(status == "ACTIVE"), 1, status=status, count=f"→ {restored}")


def run_restore(api: SessionClient, body: Json, console: Console) -> Json:
    """Start a restore (``body`` as ``POST /v1/restores`` takes it) and follow it: a row per
    volume (blocks written, verified), then per server (BUILD → ACTIVE); then the RTO."""
    accepted = call(api, "POST", "/v1/restores", body, expect=202)["restore"]
    console.print(f"restore {accepted['id']} of checkpoint {body['checkpoint']} started")
    checkpoint = call(api, "GET", f"/v1/checkpoints/{body['checkpoint']}")["checkpoint"]
    volumes = {v["volume"]: v for v in checkpoint["volumes"]}
    draw = functools.partial(_restore_rows, volumes=volumes)
    done = follow(api, "restore", accepted["id"], console, draw)
    if done["status"] == "failed":
        raise CascadeError(f"restore {done['id']} failed: {done['error']}")
    console.print(
        f"restore {done['id']} completed at {done['target_site']}: {_verified(done)}/"
        f"{len(done['volumes'])} volumes verified, {len(done['servers'])} servers ACTIVE; "
        f"RTO {seconds(done['rto_s'])} (from its start until every server ran on verified data)"
    )
    return done


def _verified(restore: Json) -> int:
    return sum(1 for v in restore["volumes"].values() if v.get("verified"))


def _listing(columns: str, rows: list[Row]) -> None:
    output().print(table(columns, rows) if rows else "none")


def _pairs(values: list[str], option: str) -> dict[str, str]:
    """``SRC=DST`` values as a mapping."""
    pairs = {}
    for value in values:
        source, equals, target = value.partition("=")
        if not (source and equals and target):
            raise typer.BadParameter(f"{value!r} is not SRC=DST", param_hint=option)
        pairs[source] = target
    return pairs


@app.command("plans")
def plans(ctx: typer.Context) -> None:
    """List protection plans with their RPO (the age of the newest restorable checkpoint)."""
    api = _api(ctx)
    found = call(api, "GET", "/v1/protection-plans")["plans"]
    names = server_names(api)
    rows: list[Row] = [
        (
            plan["name"],
            plan["id"],
            f"{plan['source_site']} → {plan['target_site']}",
            ", ".join(
                f"{names.get(m['server'], m['server'])} ({len(m['volumes'])} volumes)"
                for m in plan["members"]
            ),
            styled(plan["status"]),
            seconds(plan["rpo_s"]),
        )
        for plan in found
    ]
    _listing("name,id,source → target,members,status,RPO", rows)


@plan_app.command("create")
def plan_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The plan's name")],
    server: Annotated[
        list[str], typer.Option("--server", help="A server id, in freeze order (repeat)")
    ],
    target: Annotated[str, typer.Option("--target", help="The site to restore at")],
    retention: Annotated[int | None, typer.Option(help="Checkpoints to keep [default 7]")] = None,
    store: Annotated[str | None, typer.Option(help="site://SITE/CONTAINER or file:///DIR")] = None,
) -> None:
    """Protect servers of one site for another; waits until the plan is ACTIVE."""
    plan = create_plan(_api(ctx), name, server, target, retention, store)
    volumes = sum(len(m["volumes"]) for m in plan["members"])
    output().print(
        f"plan {plan['name']} ({plan['id']}) {plan['status']}: servers {len(plan['members'])}, "
        f"volumes {volumes} at {plan['source_site']}; protected for {plan['target_site']} "
        f"into {plan['chunk_store']}"
    )


@app.command("checkpoint")
def checkpoint(
    ctx: typer.Context, plan: Annotated[str, typer.Argument(help="The plan's name or id")]
) -> None:
    """Take a checkpoint of a plan and follow it (per-volume progress, freeze window)."""
    api = _api(ctx)
    take_checkpoint(api, find_plan(api, plan), output())


@app.command("checkpoints")
def checkpoints(
    ctx: typer.Context,
    plan: Annotated[str | None, typer.Option(help="Only this plan's (name or id)")] = None,
) -> None:
    """List checkpoints, oldest first."""
    api = _api(ctx)
    found = call(api, "GET", "/v1/checkpoints")["checkpoints"]
    plans_by_id = {p["id"]: p["name"] for p in call(api, "GET", "/v1/protection-plans")["plans"]}
    if plan is not None:
        wanted = find_plan(api, plan)["id"]
        found = [c for c in found if c["plan_id"] == wanted]
    rows: list[Row] = [
        (
            one["id"],
            plans_by_id.get(one["plan_id"], one["plan_id"]),
            styled(one["status"]),
            str(one["consistency_point"] or "-"),
            str(len(one["volumes"])),
            f"{sum(v['read_bytes'] for v in one['volumes']) / MB:.1f}",
            seconds(one["freeze_window_s"]),
        )
        for one in found
    ]
    _listing("id,plan,status,consistency point,volumes,MB read,freeze window", rows)


@app.command("restore")
def restore(
    ctx: typer.Context,
    checkpoint_id: Annotated[str, typer.Argument(metavar="CHECKPOINT", help="Checkpoint id")],
    target: Annotated[str | None, typer.Option(help="Site [default: the plan's target]")] = None,
    flavor: Annotated[list[str] | None, typer.Option(help="SRC=DST flavor (repeat)")] = None,
    network: Annotated[list[str] | None, typer.Option(help="SRC=DST network (repeat)")] = None,
    image: Annotated[list[str] | None, typer.Option(help="SRC=DST image (repeat)")] = None,
    zone: Annotated[str | None, typer.Option(help="Availability zone at the target")] = None,
) -> None:
    """Restore a checkpoint at a site and follow it (volumes verified, servers ACTIVE, RTO)."""
    mapping: Json = {
        "flavors": _pairs(flavor or [], "--flavor"),
        "networks": _pairs(network or [], "--network"),
        "images": _pairs(image or [], "--image"),
    }
    if zone is not None:
        mapping["availability_zone"] = zone
    body: Json = {"checkpoint": checkpoint_id, "mapping": mapping}
    if target is not None:
        body["target_site"] = target
    run_restore(_api(ctx), body, output())


@app.command("restores")
def restores(ctx: typer.Context) -> None:
    """List restores with their RTO."""
    found = call(_api(ctx), "GET", "/v1/restores")["restores"]
    rows: list[Row] = [
        (
            one["id"],
            one["checkpoint"],
            one["target_site"],
            styled(one["status"]),
            f"{_verified(one)}/{len(one['volumes'])}",
            str(len(one["servers"])),
            seconds(one["rto_s"]),
            one["error"] or "",
        )
        for one in found
    ]
    _listing("id,checkpoint,target,status,verified,servers,RTO,error", rows)
