"""``cascade protect plans | plan create | checkpoint | checkpoints | restore | restores``:
protection plans, checkpoints and restores (issue 16) of a running Cascade, through its
``/v1`` API over one keystoneauth1 session (``--url``, ``--username``, ``--password``,
``--project``, or their ``CASCADE_*`` variables). ``checkpoint`` and ``restore`` follow what
they started with a Rich progress, one row per volume (and per restored server), and end with
the freeze window or the RTO; ``plans`` shows each plan's RPO, schedule and next scheduled
checkpoint. A refusal of the API is one line
naming what is wrong (the API's own message), exit 1.

This module owns the commands and the plans and checkpoints; restores (the request, their
progress and outcome) are ``cascade.cli.protect_restore``'s, the calls and progress rows
both use ``cascade.cli.protect_api``'s. ``create_plan``, ``take_checkpoint``,
``run_restore`` and ``wait_operation`` are what ``cascade demo`` runs too.
May import cascade.cli (clients, ops' console helpers, protect_api, protect_restore),
cascade.identity (the login plugin of Cascade's identity) and cascade.errors.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from cascade.cli.clients import SessionClient, login
from cascade.cli.ops import output, seconds, styled, when
from cascade.cli.protect_api import (
    DONE,
    MB,
    Json,
    Row,
    Rows,
    call,
    follow,
    listing,
    server_names,
    table,
    wait_operation,
)
from cascade.cli.protect_restore import restore_body, restore_rows, run_restore
from cascade.errors import CascadeError, present
from cascade.identity.follower import Master

__all__ = ["create_plan", "run_restore", "take_checkpoint", "wait_operation"]

app = typer.Typer(no_args_is_help=True)  # its help: the docstring of connection
plan_app = typer.Typer(help="Protection plans.", no_args_is_help=True)
app.add_typer(plan_app, name="plan")


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
    **options: Any,
) -> Json:
    """A plan protecting ``servers`` (freeze order) for site ``target``, once ACTIVE.
    ``options``: more of the plan's fields (``checkpoint_every_s``, ``strategy``,
    ``freeze_bound_s``); one that is None is left to the API's default."""
    body: Json = {"name": name, "members": [{"server": s} for s in servers], "target_site": target}
    given = {"retention": retention, "chunk_store": store, **options}
    body.update({key: value for key, value in given.items() if value is not None})
    accepted = call(api, "POST", "/v1/protection-plans", body, expect=202)
    wait_operation(api, accepted["operation"]["id"])
    plan: Json = call(api, "GET", f"/v1/protection-plans/{accepted['plan']['id']}")["plan"]
    return plan


SERVER_STATES = ("failed", "pending", "backing-up")  # a server row shows the first of these


def _checkpoint_rows(rows: Rows, checkpoint: Json) -> None:
    """A row for the checkpoint, one per member server (its volumes together) and one per
    volume."""
    status = checkpoint["status"]
    ended = int(status in DONE["checkpoint"])
    rows.show("checkpoint", f"checkpoint {checkpoint['id'][-8:]}", ended, 1, status=status)
    _server_rows(rows, checkpoint)
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


def _server_rows(rows: Rows, checkpoint: Json) -> None:
    """Per member server, in the plan's order: its volumes' blocks together and the least
    advanced of their states ("freezing" while the checkpoint's barrier runs)."""
    volumes: dict[str, list[Json]] = {}
    for volume in sorted(checkpoint["volumes"], key=lambda v: (v["position"], v["device"])):
        volumes.setdefault(volume["server"], []).append(volume)
    for server, its in volumes.items():
        done = sum(v["done_blocks"] for v in its)
        changed = sum(v["changed_blocks"] for v in its)
        states = {v["status"] for v in its}
        status = next((s for s in SERVER_STATES if s in states), "available")
        if status == "pending" and checkpoint["status"] == "running":
            status = "freezing"  # the barrier: every member frozen, in order, then snapshot
        total = max(changed, 1)
        rows.show(
            server,
            f"server {rows.names.get(server, server)}",
            total if status == "available" else done,
            total,
            status=status,
            count=f"{done}/{changed} blocks",
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
            _every(plan.get("checkpoint_every_s")),
            _next(plan.get("next_checkpoint_at")),
        )
        for plan in found
    ]
    listing("name,id,source → target,members,status,RPO,every,next checkpoint", rows)


def _every(value: int | None) -> str:
    """A plan's schedule: its interval, or "manual" (checkpoints only on request)."""
    return "manual" if value is None else seconds(value)


def _next(value: str | None) -> str:
    """When the schedule takes the plan's next checkpoint ("-" without a schedule)."""
    return when(datetime.fromisoformat(value) if value else None)


@plan_app.command("create")
def plan_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The plan's name")],
    server: Annotated[
        list[str], typer.Option("--server", help="A server id, in freeze order (repeat)")
    ],
    target: Annotated[str, typer.Option("--target", help="The site to restore at")],
    retention: Annotated[int | None, typer.Option(help="Checkpoints to keep [default 7]")] = None,
    store: Annotated[
        str | None, typer.Option(help="site://SITE/CONTAINER, file:///DIR or s3://HOST/BUCKET")
    ] = None,
    every: Annotated[
        int | None,
        typer.Option(
            "--every",
            metavar="SECONDS",
            help="Take a checkpoint every SECONDS (at least 60) [default: only on request]",
        ),
    ] = None,
    strategy: Annotated[
        Literal["group_snapshot", "storage_replication", "image_snapshot"] | None,
        typer.Option(help="How checkpoints are taken [default group_snapshot]"),
    ] = None,
    freeze_bound_s: Annotated[
        float | None,
        typer.Option("--freeze-bound-s", help="Longest a server may stay frozen [default 30]"),
    ] = None,
) -> None:
    """Protect servers of one site for another; waits until the plan is ACTIVE."""
    plan = create_plan(
        _api(ctx),
        name,
        server,
        target,
        retention,
        store,
        checkpoint_every_s=every,
        strategy=strategy,
        freeze_bound_s=freeze_bound_s,
    )
    volumes = sum(len(m["volumes"]) for m in plan["members"])
    schedule = (
        f"a checkpoint every {seconds(plan['checkpoint_every_s'])}, the next at "
        f"{_next(plan['next_checkpoint_at'])}"
        if plan.get("checkpoint_every_s")
        else "checkpoints on request"
    )
    output().print(
        f"plan {plan['name']} ({plan['id']}) {plan['status']}: {plan['strategy']}, servers "
        f"{len(plan['members'])}, volumes {volumes} at {plan['source_site']}; protected for "
        f"{plan['target_site']} into {plan['chunk_store']}; {schedule}"
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
    listing("id,plan,status,consistency point,volumes,MB read,freeze window", rows)


@app.command("restore")
def restore(
    ctx: typer.Context,
    checkpoint_id: Annotated[str, typer.Argument(metavar="CHECKPOINT", help="Checkpoint id")],
    target: Annotated[str | None, typer.Option(help="Site [default: the plan's target]")] = None,
    flavor: Annotated[list[str] | None, typer.Option(help="SRC=DST flavor (repeat)")] = None,
    network: Annotated[list[str] | None, typer.Option(help="SRC=DST network (repeat)")] = None,
    image: Annotated[list[str] | None, typer.Option(help="SRC=DST image (repeat)")] = None,
    zone: Annotated[str | None, typer.Option(help="Availability zone at the target")] = None,
    service_ip: Annotated[
        str | None,
        typer.Option(
            "--service-ip",
            metavar="ID",
            help="A service IP moved to a restored server once every server runs",
        ),
    ] = None,
    service_ip_to: Annotated[
        str | None,
        typer.Option(
            "--service-ip-to",
            metavar="SERVER",
            help="The source server (id or name) whose restored server takes it "
            "[default: its holder's]",
        ),
    ] = None,
) -> None:
    """Restore a checkpoint at a site and follow it (volumes verified, servers ACTIVE, RTO),
    then show its ports and service IP."""
    mappings = {"flavors": flavor or [], "networks": network or [], "images": image or []}
    body = restore_body(checkpoint_id, target, mappings, zone, service_ip, service_ip_to)
    run_restore(_api(ctx), body, output())


@app.command("restores")
def restores(ctx: typer.Context) -> None:
    """List restores with their RTO."""
    found = call(_api(ctx), "GET", "/v1/restores")["restores"]
    listing("id,checkpoint,target,status,verified,servers,RTO,error", restore_rows(found))
