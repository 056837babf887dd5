"""Restores for ``cascade protect restore | restores``: the request built from the command's
options (``SRC=DST`` mappings, the service IP to move and the server to take it), a restore
followed to its end (a progress row per volume, per restored server and for the service IP),
then what it did, as tables: the ports the restored servers got (server, network, IP, MAC,
moved from the source or new), the service IP's move (status, holder, switchover, sites it
is pending at), the sites whose remote ports were not re-pointed; and for a failed restore
what was removed again at the target, before the one-line error. ``run_restore`` is what
``cascade demo`` runs too.

May import cascade.cli (protect_api, ops' console helpers) and cascade.errors.
"""

from __future__ import annotations

import functools

import typer
from rich.console import Console
from rich.table import Table

from cascade.cli.clients import SessionClient
from cascade.cli.ops import seconds, styled
from cascade.cli.protect_api import Json, Row, Rows, call, follow, server_names, table
from cascade.errors import CascadeError


def _pairs(values: list[str], option: str) -> dict[str, str]:
    """``SRC=DST`` values as a mapping."""
    pairs = {}
    for value in values:
        source, equals, target = value.partition("=")
        if not (source and equals and target):
            raise typer.BadParameter(f"{value!r} is not SRC=DST", param_hint=option)
        pairs[source] = target
    return pairs


def restore_body(
    checkpoint_id: str,
    target: str | None,
    mappings: dict[str, list[str]],
    zone: str | None,
    service_ip: str | None,
    service_ip_to: str | None,
) -> Json:
    """``POST /v1/restores``'s body; ``mappings``: the ``SRC=DST`` values per kind (flavors,
    networks, images). What only the API can judge (an unknown service IP, a server not of
    the plan) it refuses, in one line."""
    mapping: Json = {kind: _pairs(values, f"--{kind[:-1]}") for kind, values in mappings.items()}
    if zone is not None:
        mapping["availability_zone"] = zone
    body: Json = {"checkpoint": checkpoint_id, "mapping": mapping}
    optional = {"target_site": target, "service_ip": service_ip, "service_ip_to": service_ip_to}
    return body | {key: value for key, value in optional.items() if value is not None}


def _restore_rows(rows: Rows, restore: Json, volumes: dict[str, Json]) -> None:
    """A row per volume (``volumes``: the checkpoint's, by id), per server, for the service IP."""
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
    made = call(rows.api, "GET", "/v1/servers")["servers"] if restore["servers"] else []
    running = {server["id"]: server["status"] for server in made}
    for source, restored in restore["servers"].items():
        status = running.get(restored, "removed")  # a failed restore's clean-up removes it
        name = f"server {rows.names.get(source, source)}"
        rows.show(restored, name, int(status == "ACTIVE"), 1, status=status, count=f"→ {restored}")
    moved = restore["service_ip"]
    if moved is not None:
        status = moved["status"]
        to = rows.names.get(moved["to"], moved["to"])
        label = f"service IP {moved['address']}"
        rows.show("service_ip", label, int(status != "pending"), 1, status=status, count=f"→ {to}")


def ports_table(restore: Json, names: dict[str, str]) -> Table | None:
    """The restored servers' ports on Cascade networks (none: no table)."""
    rows: list[Row] = [
        (
            names.get(source, source),
            port["network"],
            port["ip"],
            port["mac"],
            f"{port['port']} ({'moved' if 'moved_from' in port else 'new'})",
        )
        for source, port in sorted(restore["ports"].items(), key=lambda p: names.get(p[0], p[0]))
        if "server" in port
    ]
    if not rows:
        return None
    return table("server,network,IP,MAC,port", rows, f"ports of restore {restore['id']}")


def service_ip_table(moved: Json, names: dict[str, str]) -> Table:
    """The service IP's move: for which source server, how it went, who holds it where."""
    pending = moved.get("pending_sites") or {}
    holder = str(moved.get("holder") or "-")
    row: Row = (
        str(moved["address"]),
        names.get(moved["to"], str(moved["to"])),
        styled(moved["status"]),
        names.get(holder, holder),
        moved.get("holder_site") or "-",
        seconds(moved.get("switchover_s")),
        ", ".join(sorted(pending)) or "-",
        moved.get("error") or "",
    )
    columns = "address,for,status,holder,holder site,switchover,pending at,error"
    return table(columns, [row], f"service IP {moved['id']}")


def cleanup_table(cleanup: Json) -> Table:
    """What a failed restore removed again at the target (and what it kept)."""
    rows: list[Row] = [("server", ident, "removed") for ident in cleanup.get("servers", [])]
    rows += [("volume", ident, "removed") for ident in cleanup.get("volumes", [])]
    rows += [("volume", ident, "kept (replica)") for ident in cleanup.get("kept_replicas", [])]
    if "error" in cleanup:
        rows.append(("clean-up", "-", styled("failed") + f": {cleanup['error']}"))
    return table("made at the target,id,now", rows, "clean-up of the failed restore")


def _outcome(api: SessionClient, done: Json, console: Console) -> None:
    """The restore's ports, service IP and the sites whose remote ports failed."""
    names = server_names(api)
    ports = ports_table(done, names)
    if ports is not None:
        console.print(ports)
    if done["service_ip"] is not None:
        console.print(service_ip_table(done["service_ip"], names))
    result = call(api, "GET", f"/v1/operations/{done['operation']}")["operation"]["result"]
    failed: dict[str, str] = (result or {}).get("remote_ports_failed", {})
    if failed:
        rows: list[Row] = [(site, error) for site, error in sorted(failed.items())]
        console.print(table("site,error", rows, "remote ports not re-pointed"))
        console.print("(the convergence pass re-points them when the site returns)")


def run_restore(api: SessionClient, body: Json, console: Console) -> Json:
    """Start a restore (``body`` as ``POST /v1/restores`` takes it) and follow it: a row per
    volume (blocks written, verified), then per server (BUILD → ACTIVE); then the RTO and
    what it did (ports, service IP). A failed restore shows its clean-up, then is a
    CascadeError."""
    accepted = call(api, "POST", "/v1/restores", body, expect=202)["restore"]
    console.print(f"restore {accepted['id']} of checkpoint {body['checkpoint']} started")
    checkpoint = call(api, "GET", f"/v1/checkpoints/{body['checkpoint']}")["checkpoint"]
    volumes = {v["volume"]: v for v in checkpoint["volumes"]}
    draw = functools.partial(_restore_rows, volumes=volumes)
    done = follow(api, "restore", accepted["id"], console, draw)
    if done["status"] == "failed":
        if done["cleanup"] is not None:
            console.print(cleanup_table(done["cleanup"]))
        raise CascadeError(f"restore {done['id']} failed: {done['error']}")
    console.print(
        f"restore {done['id']} completed at {done['target_site']}: {verified(done)}/"
        f"{len(done['volumes'])} volumes verified, {len(done['servers'])} servers ACTIVE; "
        f"RTO {seconds(done['rto_s'])} (from its start until every server ran on verified data)"
    )
    _outcome(api, done, console)
    return done


def verified(restore: Json) -> int:
    return sum(1 for v in restore["volumes"].values() if v.get("verified"))


def restore_rows(found: list[Json]) -> list[Row]:
    """``cascade protect restores``' rows."""
    return [
        (
            one["id"],
            one["checkpoint"],
            one["target_site"],
            styled(one["status"]),
            f"{verified(one)}/{len(one['volumes'])}",
            str(len(one["servers"])),
            seconds(one["rto_s"]),
            one["error"] or "",
        )
        for one in found
    ]
