"""``cascade bench network``: networks that span sites, measured with real packets.

An embedded Cascade (one worker) and two site-sims on the Linux dataplane, plugged into one
throwaway underlay, hold a stretched network (made through Cascade's API) with servers at
both sites. Then:

- **remote ports**: ``--ports`` remote ports are made at site B the way Cascade makes them
  (openstacksdk, ``binding:profile.tunnel_ip`` = the VTEP of a server's host at site A), one
  at a time; each is timed from the call until every host of site B holding the network has
  its FDB entry in the kernel (read back with netlink). Baseline, same run: the same port
  call for a plain unbound port (no host to program), so the ratio is what programming costs
  on top of the API.
- **service IP**: a VM at site A pings a service IP held by another VM at site A every
  10 ms; Cascade moves it to a VM at site B. ``switchover_s`` is from the move's request to
  the first reply from the new holder (its MAC in the pinger's ARP table), ``loss_window_s``
  the longest silence the pinger saw after the move began; the operation's own control-plane
  part is ``operation_switchover_s``.
- **FDB**: ``cascade bench fdb``'s figures (``--entries`` remote neighbours through the Linux
  dataplane against ``bridge -batch``).

Needs root. With ``--json`` the last line is one JSON object with every figure.
"""

from __future__ import annotations

import ipaddress
import json
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cascade.cli import netlab
from cascade.cli.bench.fdb import measure_fdb
from cascade.cli.bench.http import percentile
from cascade.cli.clients import SessionClient, login, password_auth_plugin
from cascade.cli.embedded import EmbeddedCascade, EmbeddedSite
from cascade.cli.probes import Pinger, answering, can_make_namespaces, underlay_bridge
from cascade.errors import CascadeError
from cascade.fabric.dataplane.linux import LinuxDataplane
from cascade.sites.driver import SiteDriver

console = Console(stderr=True, width=130)
PASSWORD = "bench-network-password"  # noqa: S105 - throwaway sites' and Cascade's password
SITES = ("bench-a", "bench-b")
CIDR = "10.200.0.0/20"
FIRST_BENCH_ADDRESS = ipaddress.IPv4Address("10.200.8.0")  # Cascade's servers take the lowest
SERVICE_IP = "10.200.15.200"
IMAGE = "bench-image"


def _start(stack: ExitStack, root: Path) -> tuple[SessionClient, list[EmbeddedSite]]:
    underlay = stack.enter_context(underlay_bridge())
    cascade = stack.enter_context(EmbeddedCascade(root / "cascade", PASSWORD, workers=1))
    args = ["--hosts", "2", "--build-seconds", "0", "--dataplane", "linux", "--underlay", underlay]
    sites = [stack.enter_context(EmbeddedSite(n, root / n, PASSWORD, args=args)) for n in SITES]
    api = SessionClient(
        login(password_auth_plugin(f"{cascade.url}/identity/v3", PASSWORD)), cascade.url
    )
    for site in sites:
        credentials = {"username": "admin", "password": PASSWORD, "project_name": "admin"}
        body = {"name": site.site_name, "region_name": site.region, "identity_url": site.auth_url}
        api.call("POST", "/v1/sites", {**body, "credentials": credentials}, 201)
        SiteDriver(site.access()).call(
            "upload image",
            lambda c: c.image.create_image(
                name=IMAGE, data=b"bench" * 1024, disk_format="raw", container_format="bare"
            ),
        )
    return api, sites


def _holding_hosts(site: EmbeddedSite, site_network_id: str) -> list[LinuxDataplane]:
    """Read-only views of the site's hosts that hold the network (they program its ports)."""
    hosts = netlab.dataplane(site)["hosts"]
    return [
        LinuxDataplane(h["namespace"], h["vtep"])
        for h in hosts
        if any(n["id"] == site_network_id for n in h["networks"])
    ]


def _timed_ports(site: EmbeddedSite, network_id: str, vtep: str, count: int) -> dict[str, Any]:
    conn = SiteDriver(site.access()).connection
    readers = _holding_hosts(site, network_id)
    made, remote, plain = [], [], []
    try:
        for i in range(count):
            mac = f"02:be:00:00:{i >> 8 & 255:02x}:{i & 255:02x}"
            address = str(FIRST_BENCH_ADDRESS + i)
            started = time.perf_counter()
            made.append(
                conn.network.create_port(
                    network_id=network_id,
                    mac_address=mac,
                    fixed_ips=[{"ip_address": address}],
                    device_owner="compute:shadow",
                    binding_profile={"tunnel_ip": vtep},
                    security_groups=[],
                )
            )
            while not all(f"mac:{mac}" in r.neighbours(network_id) for r in readers):
                if time.perf_counter() - started > 30:
                    raise CascadeError(f"remote port {address} was not programmed in 30 s")
                time.sleep(0.001)
            remote.append(time.perf_counter() - started)
        for i in range(count):
            address = str(FIRST_BENCH_ADDRESS + count + i)
            started = time.perf_counter()
            made.append(
                conn.network.create_port(network_id=network_id, fixed_ips=[{"ip_address": address}])
            )
            plain.append(time.perf_counter() - started)
    finally:
        for reader in readers:
            reader.close()
        for port in made:
            conn.network.delete_port(port, ignore_missing=True)
    p50 = percentile(remote, 50)
    return {
        "remote_ports": count,
        "hosts_holding_network": len(readers),
        "remote_port_p50_s": round(p50, 4),
        "remote_port_p99_s": round(percentile(remote, 99), 4),
        "plain_port_p50_s": round(percentile(plain, 50), 4),
        "remote_port_ratio": round(p50 / percentile(plain, 50), 2),
    }


def _switchover(
    api: SessionClient,
    site_a: EmbeddedSite,
    holder: dict[str, Any],
    pinger_vm: dict[str, Any],
    standby: dict[str, Any],
) -> dict[str, Any]:
    service_ip = netlab.take_service_ip(api, "bench-net", holder["id"], SERVICE_IP)
    netns = netlab.vm_namespace(site_a, pinger_vm["port"]["site_port_id"])
    answering(netns, SERVICE_IP, "the service IP's first holder")
    pinger = Pinger(netns, SERVICE_IP, interval=0.01, duration=8)
    try:
        time.sleep(2)
        moved_at = time.time()
        operation = netlab.move_service_ip(api, service_ip["id"], standby["id"])
        replies = pinger.result()
    finally:
        pinger.stop()
    first = replies.first_from(standby["port"]["mac"], moved_at)
    return {
        "switchover_s": round(first - moved_at, 4) if first is not None else None,
        "loss_window_s": round(replies.loss_window(moved_at), 4),
        "operation_switchover_s": operation["result"]["switchover_s"],
        "pings_answered": len(replies.answered),
    }


def measure(ports: int, root: Path) -> dict[str, Any]:
    with ExitStack() as stack:
        with console.status("starting Cascade and two site-sims on the Linux dataplane"):
            api, (site_a, site_b) = _start(stack, root)
        with console.status("a stretched network and four servers"):
            network = netlab.stretched_network(api, "bench-net", CIDR, list(SITES))
            holder, pinger_vm = (
                netlab.boot(api, n, "bench-a", "bench-net", IMAGE) for n in ("a1", "a2")
            )
            standby, other = (
                netlab.boot(api, n, "bench-b", "bench-net", IMAGE) for n in ("b1", "b2")
            )
        del other  # its host holds the network too: every host of site B is measured
        with console.status(f"{ports} remote ports at site B"):
            figures = _timed_ports(
                site_b,
                network["sites"]["bench-b"]["site_network_id"],
                holder["port"]["vtep"],
                ports,
            )
        with console.status("a service IP moved from site A to site B under a 10 ms pinger"):
            figures |= _switchover(api, site_a, holder, pinger_vm, standby)
    return figures


def network(
    ports: Annotated[int, typer.Option(min=1, max=2000, help="Remote ports to time")] = 100,
    entries: Annotated[int, typer.Option(min=1, help="FDB entries for the FDB part")] = 10000,
    json_out: Annotated[bool, typer.Option("--json", help="Print figures as JSON last")] = False,
) -> None:
    """Remote-port programming latency, service IP switchover and FDB programming rate."""
    if not can_make_namespaces():
        raise CascadeError("cascade bench network needs root and iproute2 (ip netns)")
    with tempfile.TemporaryDirectory(prefix="cascade-bench-network-") as root:
        figures = measure(ports, Path(root))
    with console.status(f"programming {entries:,} FDB entries twice"):
        fdb = measure_fdb(entries)
    figures |= {
        "fdb_entries_per_s": fdb["fdb_entries_per_s"],
        "bridge_batch_entries_per_s": fdb["bridge_batch_entries_per_s"],
        "fdb_ratio": round(fdb["fdb_entries_per_s"] / fdb["bridge_batch_entries_per_s"], 2),
    }
    table = Table("figure", "value", title="bench network")
    for key, value in figures.items():
        table.add_row(key, str(value))
    console.print(table)
    if json_out:
        print(json.dumps(figures))
