"""The engine's part of ``cascade demo``: two supervised workers share operations over two
sites, one is killed with SIGKILL mid-way, and every operation still ends done once."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from rich.console import Console
from rich.table import Table

from cascade.cli.clients import SessionClient
from cascade.cli.embedded import EmbeddedSite
from cascade.errors import CascadeError
from cascade.sites.driver import SiteDriver

console = Console()
DEMO_IMAGE = b"cascade demo image " * 4096  # 76 KiB of real bytes
IMAGE_NAME = "demo-image"
SERVERS_PER_SITE = 3


def prepare_sites(sites: list[EmbeddedSite]) -> None:
    """An image and a network at each site (found again if the tour ran before)."""
    for site in sites:
        _prepare(SiteDriver(site.access()))
        console.print(f"{site.site_name}: image {IMAGE_NAME} and network demo-net ready")


def _prepare(driver: SiteDriver) -> None:
    if driver.call("find image", lambda c: c.image.find_image(IMAGE_NAME)) is None:
        driver.call(
            "upload image",
            lambda c: c.image.create_image(
                name=IMAGE_NAME, data=DEMO_IMAGE, disk_format="raw", container_format="bare"
            ),
        )
    if driver.call("find network", lambda c: c.network.find_network("demo-net")) is not None:
        return
    net = driver.call("create network", lambda c: c.network.create_network(name="demo-net"))
    driver.call(
        "create subnet",
        lambda c: c.network.create_subnet(
            network_id=net.id, cidr="10.10.0.0/24", ip_version=4, name="demo-subnet"
        ),
    )


def _submit(api: SessionClient, sites: list[EmbeddedSite]) -> list[str]:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    public_key = key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    operations = []
    body = {"name": f"demo-key-{int(time.time())}", "public_key": public_key}
    operations.append(api.call("POST", "/v1/keypairs", body, 202)["operation"]["id"])
    for index in range(SERVERS_PER_SITE):
        for site in sites:
            spec = {
                "name": f"vnf-{site.site_name}-{index}",
                "site": site.site_name,
                "flavor": "m1.tiny",
                "image": IMAGE_NAME,
                "network": "demo-net",
            }
            operations.append(api.call("POST", "/v1/servers", spec, 202)["operation"]["id"])
    console.print(
        f"accepted {len(operations)} operations (1 keypair at every site, "
        f"{SERVERS_PER_SITE} servers per site), each answered 202 at once"
    )
    return operations


def _kill_a_busy_worker(api: SessionClient) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        running = api.call("GET", "/v1/operations?status=running")["operations"]
        busy = Counter(op["executor_id"] for op in running if op["executor_id"])
        if busy:
            victim = busy.most_common(1)[0][0]
            workers = api.call("GET", "/v1/cluster")["workers"]
            pid = next(w["pid"] for w in workers if w["executor_id"] == victim)
            os.kill(pid, signal.SIGKILL)
            console.print(
                f"[red]SIGKILL[/red] worker {victim} (pid {pid}) while it ran "
                f"{busy[victim]} operations"
            )
            return str(victim)
        time.sleep(0.05)
    raise CascadeError("no worker picked up the demo's operations within 10 s")


def _wait_all(api: SessionClient, operations: list[str]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 120
    with console.status("waiting for every operation") as status:
        while True:
            done = [api.call("GET", f"/v1/operations/{op}")["operation"] for op in operations]
            finished = [op for op in done if op["status"] in ("succeeded", "failed")]
            status.update(f"{len(finished)}/{len(done)} operations finished")
            if len(finished) == len(done):
                return done
            if time.monotonic() > deadline:
                raise CascadeError("operations did not finish within 120 s")
            time.sleep(0.2)


def _show(done: list[dict[str, Any]], victim: str) -> None:
    table = Table("operation", "kind", "sites", "status", "ran on", "step runs", title="Operations")
    for op in done:
        runs = sum(step["attempts"] for step in op["steps"])
        table.add_row(
            op["id"][-8:],
            op["kind"],
            ", ".join(f"{site} {state}" for site, state in sorted(op["sites"].items())),
            op["status"],
            op["executor_id"] or "",
            f"{runs} ({runs - len(op['steps'])} re-run)" if runs > len(op["steps"]) else str(runs),
        )
    console.print(table)
    failed = [op for op in done if op["status"] != "succeeded"]
    if failed:
        raise CascadeError(f"{len(failed)} operations failed: {failed[0]['error']}")
    console.print(f"every operation succeeded although worker {victim} was killed mid-way")


def _count_at_sites(api: SessionClient, sites: list[EmbeddedSite]) -> None:
    wanted = {s["id"] for s in api.call("GET", "/v1/servers")["servers"]}
    held: Counter[str] = Counter()
    for site in sites:
        servers = SiteDriver(site.access()).call(
            "list servers", lambda c: list(c.compute.servers(details=True))
        )
        held.update(s.metadata.get("cascade_id") for s in servers if s.metadata.get("cascade_id"))
    duplicates = {server: count for server, count in held.items() if count > 1}
    if duplicates or set(held) != wanted:
        raise CascadeError(f"sites disagree with Cascade: {dict(held)} vs {sorted(wanted)}")
    console.print(f"{len(wanted)} servers in Cascade, exactly one of each at its site")


def share_work(api: SessionClient, sites: list[EmbeddedSite]) -> None:
    operations = _submit(api, sites)
    victim = _kill_a_busy_worker(api)
    done = _wait_all(api, operations)
    _show(done, victim)
    _count_at_sites(api, sites)


def list_servers(api: SessionClient) -> None:
    table = Table("site", "server", "status", "site server id", title="Servers across sites")
    for server in api.call("GET", "/v1/servers")["servers"]:
        table.add_row(server["site"], server["name"], server["status"], server["site_server_id"])
    console.print(table)
