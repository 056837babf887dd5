"""The protection part of ``cascade demo`` (issue 16): a VNF of two servers at site A, each
booting from a 1 GiB volume and with a 1 GiB data volume attached at the site, known bytes
written into its data volume, a plan protecting it for site B and a checkpoint (a progress
row per volume); then other bytes written over them, site A's site-sim SIGKILLed (the site is
lost, and its volumes with it), the checkpoint restored at site B, and the RPO, the RTO and
the data read back from the restored volumes shown: the bytes of before the checkpoint, none
of after. Site A stays dead: this part runs after every part that needs it.

Bytes go in and out through the site-sim's ``/sim/v1/volumes/{id}/data`` (as a guest would
write them) with Cascade's token, which each site validates as a replica of its identity.
May import cascade.cli and cascade.sites.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from openstack.connection import Connection
from rich.console import Console
from rich.table import Table

from cascade.cli import protect
from cascade.cli.clients import SessionClient
from cascade.cli.embedded import EmbeddedSite
from cascade.cli.ops import seconds
from cascade.errors import CascadeError
from cascade.sites.driver import SiteDriver

console = Console()
VNF_SIZE = 2
BLOCK = 4 << 20  # the sites' block size
BLOCKS = (0, 5, 200)  # blocks of each data volume written before and after the checkpoint
BEFORE, AFTER = b"written before the checkpoint ", b"written after the checkpoint  "


def _make_vnf(api: SessionClient, site: EmbeddedSite, image: str) -> list[dict[str, Any]]:
    """``VNF_SIZE`` ACTIVE servers at ``site``, booting from a 1 GiB volume."""
    accepted = [
        api.call(
            "POST",
            "/v1/servers",
            {
                "name": f"protected-{n}",
                "site": site.site_name,
                "flavor": "m1.tiny",
                "image": image,
                "network": "demo-net",
                "boot_volume_gb": 1,
            },
            202,
        )
        for n in range(1, VNF_SIZE + 1)
    ]
    for one in accepted:
        protect.wait_operation(api, one["operation"]["id"])
    return [api.call("GET", f"/v1/servers/{one['server']['id']}")["server"] for one in accepted]


def _attach_data_volume(driver: SiteDriver, server: dict[str, Any]) -> str:
    """A 1 GiB volume made and attached to the server at its site (as its guest's disk)."""

    def attach(c: Connection) -> str:
        volume = c.block_storage.create_volume(size=1, name=f"data-{server['name']}")
        c.block_storage.wait_for_status(volume, "available", wait=60, interval=0.2)
        c.compute.create_volume_attachment(server["site_server_id"], volume_id=volume.id)
        c.block_storage.wait_for_status(volume, "in-use", wait=60, interval=0.2)
        return str(volume.id)

    return driver.call(f"attach a data volume to {server['name']}", attach)


def _pattern(prefix: bytes, server: dict[str, Any], block: int) -> bytes:
    return prefix + f"by {server['name']} in block {block}".encode()


def _write(
    api: SessionClient, site: EmbeddedSite, data: dict[str, str], servers: list[Any], prefix: bytes
) -> None:
    """``prefix``'s pattern into ``BLOCKS`` of each server's data volume."""
    at_site = api.at(site.url)
    for server in servers:
        for block in BLOCKS:
            path = f"/sim/v1/volumes/{data[server['id']]}/data?offset={block * BLOCK}"
            at_site.send("PUT", path, data=_pattern(prefix, server, block), expect=204)


def _read(api: SessionClient, site: EmbeddedSite, volume: str, block: int, length: int) -> bytes:
    path = f"/sim/v1/volumes/{volume}/data?offset={block * BLOCK}&length={length}"
    return api.at(site.url).send("GET", path).body


def _lose(api: SessionClient, site: EmbeddedSite) -> None:
    """SIGKILL the site's site-sim; then remove the network namespaces its Linux dataplane
    held (a killed site-sim cannot), as read from the site before."""
    view = api.at(site.url).call("GET", "/sim/v1/dataplane")
    held = [h["namespace"] for h in view.get("hosts", []) if h.get("namespace")]
    held += [p["vm_namespace"] for p in view.get("ports", []) if p.get("vm_namespace")]
    pid = site.pid
    site.kill()
    for namespace in held:
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
    console.print(
        f"[red]SIGKILL[/red] the site-sim of {site.site_name} (pid {pid}): site A is lost, "
        "its servers and volumes with it"
    )


def _show_data(
    api: SessionClient,
    target: EmbeddedSite,
    servers: list[dict[str, Any]],
    data: dict[str, str],
    restore: dict[str, Any],
) -> None:
    """The restored data volumes hold the bytes written before the checkpoint, not after."""
    table = Table("server", "block", "read from its restored volume at site B", "verified")
    for server in servers:
        restored = restore["volumes"][data[server["id"]]]["volume"]
        for block in BLOCKS:
            wanted = _pattern(BEFORE, server, block)
            read = _read(api, target, restored, block, len(wanted))
            if read != wanted or read == _pattern(AFTER, server, block):
                raise CascadeError(f"restored volume {restored} holds {read!r}, not {wanted!r}")
            table.add_row(server["name"], str(block), read.decode(), "✓")
    console.print(table)
    console.print(
        "verified: every restored data volume holds the bytes written before the checkpoint, "
        "none of those written after it"
    )


def protect_and_recover(api: SessionClient, sites: list[EmbeddedSite], image: str) -> None:
    source, target = sites
    servers = _make_vnf(api, source, image)
    driver = SiteDriver(source.access())
    data = {s["id"]: _attach_data_volume(driver, s) for s in servers}
    _write(api, source, data, servers, BEFORE)
    console.print(
        f"{VNF_SIZE} servers at {source.site_name}, each booting from a 1 GiB volume with a "
        f"1 GiB data volume; blocks {', '.join(map(str, BLOCKS))} of each data volume written"
    )
    name = f"demo-vnf-{int(time.time())}"  # a tour run again on its data dir makes another
    plan = protect.create_plan(api, name, [s["id"] for s in servers], target.site_name)
    console.print(
        f"plan {plan['name']}: {', '.join(s['name'] for s in servers)} frozen in this order, "
        f"protected for {plan['target_site']} into {plan['chunk_store']}"
    )
    checkpoint = protect.take_checkpoint(api, plan, console)
    _write(api, source, data, servers, AFTER)
    console.print("after the checkpoint, other bytes written over the same blocks")
    _lose(api, source)
    body = {"checkpoint": checkpoint["id"], "target_site": target.site_name}
    restore = protect.run_restore(api, body, console)
    plan = api.call("GET", f"/v1/protection-plans/{plan['id']}")["plan"]
    console.print(
        f"RPO {seconds(plan['rpo_s'])}: the age of the newest restorable checkpoint's "
        "consistency point (what a loss now would cost)"
    )
    console.print(f"RTO {seconds(restore['rto_s'])}: the restore's start until every server ran")
    _show_data(api, target, servers, data, restore)
