"""``cascade bench site``: API calls per second of one site-sim (server create+delete, volume
create+delete, port create) and bytes per second of a backup and a restore, against in-process
baselines measured in the same run (a file copy with fsync, sha256 of the same bytes).

Every call goes through keystoneauth1, the timed loops included: the site's answer, not the
library, is most of each call's time (``cascade bench clients``; docs/benchmarks.md,
"Benchmark HTTP clients")."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cascade.cli.clients import Client, SessionClient, login, password_auth_plugin, token
from cascade.cli.embedded import EmbeddedSite
from cascade.errors import CascadeError

console = Console()
PASSWORD = "bench-site-password"  # noqa: S105 - a throwaway site's password
MIB = 1 << 20
WRITE_CHUNK = 8 * MIB


class SiteClient:
    """One site-sim's admin through a keystoneauth1 session (v3 password login)."""

    def __init__(self, port: int, password: str = PASSWORD) -> None:
        url = f"http://127.0.0.1:{port}"
        self.http = SessionClient(login(password_auth_plugin(f"{url}/identity/v3", password)), url)
        self.token = token(self.http.session)

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        return self.http.call(method, path, body, expect)

    def wait(self, path: str, key: str, field: str, wanted: str, timeout: float = 600) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = self.call("GET", path)[key]
            if found[field] == wanted:
                return found
            if found[field] == "error" or time.monotonic() > deadline:
                raise CascadeError(f"{path}: {field} is {found[field]}, wanted {wanted}")
            time.sleep(0.05)


def _loop(seconds: float, calls_per_iteration: int, action: Callable[[], None]) -> float:
    """Calls per second of ``action`` repeated for ``seconds``."""
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        action()
        count += calls_per_iteration
    return count / (time.perf_counter() - started)


def fixtures(client: SiteClient) -> tuple[str, str]:
    """An image and a network with a subnet for the API loops: their ids."""
    image = client.call(
        "POST",
        "/image/v2/images",
        {"name": "bench", "disk_format": "raw", "container_format": "bare"},
        201,
    )
    client.http.send(
        "PUT",
        f"/image/v2/images/{image['id']}/file",
        expect=204,
        headers={"Content-Type": "application/octet-stream"},
        data=b"x" * 4096,
    )
    net = client.call("POST", "/network/v2.0/networks", {"network": {"name": "bench"}}, 201)
    client.call(
        "POST",
        "/network/v2.0/subnets",
        {"subnet": {"network_id": net["network"]["id"], "cidr": "10.0.0.0/16", "ip_version": 4}},
        201,
    )
    return image["id"], net["network"]["id"]


def api_rates(client: Client, image_id: str, network_id: str, seconds: float) -> dict[str, float]:
    """Calls per second of each timed loop, through ``client`` (logged in as the admin)."""

    def server() -> None:
        created = client.call(
            "POST",
            "/compute/v2.1/servers",
            {
                "server": {
                    "name": "bench",
                    "flavorRef": "1",
                    "imageRef": image_id,
                    "networks": "none",
                }
            },
            202,
        )
        client.call("DELETE", f"/compute/v2.1/servers/{created['server']['id']}", expect=204)

    def volume() -> None:
        created = client.call("POST", "/volume/v3/volumes", {"volume": {"size": 1}}, 202)
        client.call("DELETE", f"/volume/v3/volumes/{created['volume']['id']}", expect=202)

    def port() -> None:
        client.call("POST", "/network/v2.0/ports", {"port": {"network_id": network_id}}, 201)

    return {
        "server_create_delete_calls_per_s": _loop(seconds, 2, server),
        "volume_create_delete_calls_per_s": _loop(seconds, 2, volume),
        "port_create_calls_per_s": _loop(seconds, 1, port),
    }


def _fill(client: SiteClient, volume_id: str, size: int) -> str:
    digest = hashlib.sha256()
    for offset in range(0, size, WRITE_CHUNK):
        chunk = os.urandom(min(WRITE_CHUNK, size - offset))
        digest.update(chunk)
        client.http.send(
            "PUT",
            f"/sim/v1/volumes/{volume_id}/data?offset={offset}",
            expect=204,
            headers={"Content-Type": "application/octet-stream"},
            data=chunk,
        )
    return digest.hexdigest()


def _backup_rates(client: SiteClient, size_mib: int) -> dict[str, float]:
    size = size_mib * MIB
    gib = -(-size // (1 << 30))
    volume = client.call("POST", "/volume/v3/volumes", {"volume": {"size": gib}}, 202)["volume"]
    client.wait(f"/volume/v3/volumes/{volume['id']}", "volume", "status", "available")
    _fill(client, volume["id"], size)
    started = time.perf_counter()
    backup = client.call(
        "POST", "/volume/v3/backups", {"backup": {"volume_id": volume["id"]}}, 202
    )["backup"]
    client.wait(f"/volume/v3/backups/{backup['id']}", "backup", "status", "available")
    backup_seconds = time.perf_counter() - started
    started = time.perf_counter()
    restored = client.call(
        "POST", f"/volume/v3/backups/{backup['id']}/restore", {"restore": {}}, 202
    )["restore"]
    client.wait(f"/volume/v3/volumes/{restored['volume_id']}", "volume", "status", "available")
    restore_seconds = time.perf_counter() - started
    original = client.call("GET", f"/sim/v1/volumes/{volume['id']}/checksum")
    copy = client.call("GET", f"/sim/v1/volumes/{restored['volume_id']}/checksum")
    if original != copy:
        raise CascadeError("restored volume differs from the original")
    # Rates are of the data in the volume: its holes are neither read nor stored.
    return {
        "backup_mb_per_s": size_mib / backup_seconds,
        "restore_mb_per_s": size_mib / restore_seconds,
        "backup_data_mib": size_mib,
        "backup_volume_gib": gib,
    }


def _baselines(work: Path, size_mib: int) -> dict[str, float]:
    source, target = work / "baseline-source", work / "baseline-copy"
    data = os.urandom(size_mib * MIB)
    source.write_bytes(data)
    started = time.perf_counter()
    with source.open("rb") as reader, target.open("wb") as writer:
        shutil.copyfileobj(reader, writer, 4 * MIB)
        writer.flush()
        os.fsync(writer.fileno())
    copy_seconds = time.perf_counter() - started
    started = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    hash_seconds = time.perf_counter() - started
    source.unlink()
    target.unlink()
    return {
        "baseline_copy_fsync_mb_per_s": size_mib / copy_seconds,
        "baseline_sha256_mb_per_s": size_mib / hash_seconds,
    }


def site(
    seconds: Annotated[float, typer.Option(min=0.5, help="Seconds per API phase")] = 5.0,
    backup_mib: Annotated[int, typer.Option(min=1, max=8192, help="Backup size")] = 256,
    as_json: Annotated[bool, typer.Option("--json", help="Print figures as JSON last")] = False,
) -> None:
    """API calls per second of one site-sim and backup/restore throughput."""
    with tempfile.TemporaryDirectory(prefix="cascade-bench-site-") as temporary:
        work = Path(temporary)
        args = ["--build-seconds", "0", "--hosts", "4"]
        with EmbeddedSite("bench", work / "site", PASSWORD, args=args) as sim:
            client = SiteClient(sim.port)
            console.print(f"API calls for {seconds:g} s per phase")
            figures: dict[str, Any] = api_rates(client.http, *fixtures(client), seconds)
            console.print(f"backup and restore of a {backup_mib} MiB volume")
            figures.update(_backup_rates(client, backup_mib))
        figures.update(_baselines(work, backup_mib))
    rates = [v for k, v in figures.items() if k.endswith("calls_per_s")]
    figures["calls_per_s"] = sum(rates) / len(rates)
    figures["backup_vs_copy_ratio"] = (
        figures["backup_mb_per_s"] / figures["baseline_copy_fsync_mb_per_s"]
    )
    table = Table("figure", "value", title="cascade bench site")
    for name, value in figures.items():
        table.add_row(name, f"{value:,.1f}")
    console.print(table)
    if as_json:
        print(json.dumps({k: round(v, 3) for k, v in figures.items()}))
