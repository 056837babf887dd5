"""``cascade bench fabric``: one port joining a network of N ports over N simulated hosts,
for each N, each in a fresh ``cascade fleet-sim`` process (so peak memory is per N).

Baseline, in the same run: the time for one process to hand one message to N in-memory
subscribers and have each answer once, with no goal state, database or dataplane, which
is the floor any in-process fabric pays. With ``--json`` the last line is one JSON object:
``converge_s`` (N -> seconds), ``peak_rss_mb`` (N -> MB) and the figures of every run.

With ``--nats-cluster K`` the sizes run instead over a K-node NATS cluster (nats-server
routes on loopback) that the bench starts and stops: the controller on one connection, the
agents spread over one connection per node. ``converge_s`` and ``peak_rss_mb`` are then the
cluster's, and ``nats_cluster`` says per run and node what its clients published and were
delivered while converging (messages, bytes, and per second) and the node's memory.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Annotated, Any

import nats
import typer
from nats.aio.msg import Msg
from rich.console import Console
from rich.table import Table

from cascade.errors import BadRequest, CascadeError
from cascade.fabric.transports.base import Message
from cascade.fabric.transports.memory import MemoryTransport
from cascade.fabric.transports.nats_cluster import NatsCluster
from cascade.fabric.transports.nats_cluster import nats_cluster as running_cluster

console = Console(stderr=True, width=130)
SIZES = "1,1000,10000,100000,1000000"
REPEAT = 5
REPEAT_UP_TO = 10_000
CLUSTER_PENDING_MB = 1024


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BadRequest(f"--sizes must be comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise BadRequest(f"--sizes must be positive integers, got {text!r}")
    return sizes


def _run_fleet(hosts: int, nats: str | None, changes: int = 1) -> dict[str, Any]:
    command = [sys.executable, "-m", "cascade", "fleet-sim", "--hosts", str(hosts), "--json"]
    command += ["--changes", str(changes)]
    if nats is not None:
        command += ["--nats", nats]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise CascadeError(f"fleet-sim --hosts {hosts} failed: {reason}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _median_run(hosts: int, nats: str | None) -> dict[str, Any]:
    """Small fleets converge in milliseconds, where a shared machine's noise is of the same
    order: run them ``REPEAT`` times (a fresh process each) and keep the median run, with
    the spread beside it. Large fleets run once."""
    if hosts > REPEAT_UP_TO:
        return _run_fleet(hosts, nats)
    tries = sorted((_run_fleet(hosts, nats) for _ in range(REPEAT)), key=lambda r: r["converge_s"])
    median = tries[len(tries) // 2]
    median["converge_s_range"] = [tries[0]["converge_s"], tries[-1]["converge_s"]]
    return median


def _node_traffic(run: dict[str, Any], cluster: NatsCluster) -> list[dict[str, Any]]:
    """Per node, what its clients published and were delivered while the run converged
    (the fleet's connections summed by the node they were on), per second too."""
    seconds = run["converge_s"]
    nodes: list[dict[str, Any]] = [
        {"node": node.name, "published": 0, "published_bytes": 0, "delivered": 0,
         "delivered_bytes": 0}
        for node in cluster.nodes
    ]  # fmt: skip
    for connection in run["connections"]:
        node = nodes[cluster.index_of(connection["server"])]
        for key in ("published", "published_bytes", "delivered", "delivered_bytes"):
            node[key] += connection[key]
    for index, node in enumerate(nodes):
        node["messages_per_s"] = round((node["published"] + node["delivered"]) / seconds)
        node["bytes_per_s"] = round((node["published_bytes"] + node["delivered_bytes"]) / seconds)
        node["mem_mb"] = round(cluster.varz(index)["mem"] / 2**20, 1)
    return nodes


def _cluster_runs(sizes: list[int], nodes: int) -> list[dict[str, Any]]:
    if nodes < 1:
        raise BadRequest(f"--nats-cluster must be at least 1 node, got {nodes}")
    runs = []
    # One simulated connection carries a third of the fleet, partition traffic included:
    # allow it what nats-server would otherwise cut off as a slow consumer.
    with running_cluster(nodes, max_pending_mb=CLUSTER_PENDING_MB) as cluster:
        servers = ",".join(cluster.urls)
        for hosts in sizes:
            with console.status(f"fleet of {hosts:,} hosts (NATS cluster of {nodes})"):
                run = _run_fleet(hosts, servers)  # once: the cluster is for large N
            run["transport"] = f"nats x{nodes}"
            run["nodes"] = _node_traffic(run, cluster)
            runs.append(run)
    return runs


async def _bare_fanout(hosts: int) -> float:
    """Seconds for one message to reach ``hosts`` subscribers and each to answer once."""
    bus = MemoryTransport()
    answers = 0
    done = asyncio.Event()

    async def answer(_message: Message) -> None:
        await bus.publish("bare.ack", b"ack")

    async def count(_message: Message) -> None:
        nonlocal answers
        answers += 1
        if answers == hosts:
            done.set()

    await bus.subscribe("bare.ack", count, queue="controllers")
    for _ in range(hosts):
        await bus.subscribe("bare.net", answer)
    started = time.perf_counter()
    await bus.publish("bare.net", b"delta")
    await done.wait()
    elapsed = time.perf_counter() - started
    await bus.close()
    return elapsed


async def _raw_nats(url: str, subscribers: int, messages: int) -> float:
    """Deliveries per second with bare nats-py: ``messages`` published to ``subscribers``
    subscriptions on one connection, each answering every delivery to a collector on a
    second connection, as agents acknowledge; the same shape as the fabric's, minus it."""
    agents = await nats.connect(url, name="bench-raw-agents")
    collector = await nats.connect(url, name="bench-raw-collector")
    subject, acks = f"bench.raw.{time.monotonic_ns()}", f"bench.raw.ack.{time.monotonic_ns()}"
    answered = 0
    done = asyncio.Event()

    async def answer(_msg: Msg) -> None:
        await agents.publish(acks, b"ack")

    async def count(_msg: Msg) -> None:
        nonlocal answered
        answered += 1
        if answered == subscribers * messages:
            done.set()

    try:
        await collector.subscribe(acks, cb=count)
        for _ in range(subscribers):
            await agents.subscribe(subject, cb=answer)
        await agents.flush()
        await collector.flush()
        started = time.perf_counter()
        for index in range(messages):
            await collector.publish(subject, str(index).encode())
        await asyncio.wait_for(done.wait(), timeout=120)
        return subscribers * messages / (time.perf_counter() - started)
    finally:
        await agents.close()
        await collector.close()


def fabric(
    sizes: Annotated[str, typer.Option(help="Fleet sizes N, comma-separated")] = SIZES,
    nats: Annotated[
        str | None, typer.Option(help="Also run sizes <= 10,000 over this NATS server")
    ] = None,
    nats_agents: Annotated[
        int, typer.Option(help="With --nats: agents for the deliveries-per-second run")
    ] = 1000,
    nats_changes: Annotated[
        int, typer.Option(help="With --nats: changes each of those agents receives")
    ] = 20,
    nats_cluster: Annotated[
        int, typer.Option(help="Run the sizes over a NATS cluster of this many nodes instead")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print figures as JSON last")] = False,
) -> None:
    """Time one port joining a network spanning N simulated hosts, for each N."""
    if nats_cluster and nats is not None:
        raise BadRequest("give --nats or --nats-cluster, not both")
    deliveries: dict[str, Any] = {}
    if nats is not None:
        with console.status(f"NATS deliveries into {nats_agents:,} agents"):
            fleet = _run_fleet(nats_agents, nats, nats_changes)
            raw = asyncio.run(_raw_nats(nats, nats_agents, nats_changes))
        deliveries = {
            "agents": nats_agents,
            "changes": nats_changes,
            "fabric_per_s": fleet["agent_deliveries_per_s"],
            "raw_nats_per_s": round(raw, 1),
            "fabric_vs_raw": round(fleet["agent_deliveries_per_s"] / raw, 3),
        }
    runs: list[dict[str, Any]] = []
    for hosts in [] if nats_cluster else _sizes(sizes):
        with console.status(f"fleet of {hosts:,} hosts (in-process)"):
            run = _median_run(hosts, None)
            run["baseline_s"] = round(asyncio.run(_bare_fanout(hosts)), 4)
        runs.append(run)
        if nats is not None and hosts <= 10_000:
            with console.status(f"fleet of {hosts:,} hosts (NATS)"):
                runs.append(_median_run(hosts, nats))
    if nats_cluster:
        runs = _cluster_runs(_sizes(sizes), nats_cluster)
    table = Table(title="bench fabric: one port joins a network of N ports on N hosts")
    for column in (
        "N",
        "transport",
        "converge s",
        "baseline s",
        "messages",
        "MB sent",
        "deliveries",
        "peak RSS MB",
        "exact",
    ):
        table.add_column(column, justify="right")
    for run in runs:
        table.add_row(
            f"{run['hosts']:,}",
            run["transport"],
            f"{run['converge_s']:.4f}",
            f"{run.get('baseline_s', float('nan')):.4f}",
            f"{run['messages']:,}",
            f"{run['bytes'] / 1e6:.2f}",
            f"{run['deliveries']:,}",
            f"{run['peak_rss_mb']:,}",
            str(run["exact"]),
        )
    console.print(table)
    if deliveries:
        console.print(
            f"NATS, {deliveries['agents']:,} agents x {deliveries['changes']} changes: "
            f"fabric {deliveries['fabric_per_s']:,} deliveries/s, bare nats-py "
            f"{deliveries['raw_nats_per_s']:,}/s (ratio {deliveries['fabric_vs_raw']})"
        )
    for run in runs:
        for node in run.get("nodes", []):
            console.print(
                f"N={run['hosts']:,} {node['node']}: {node['messages_per_s']:,} messages/s, "
                f"{node['bytes_per_s'] / 1e6:.2f} MB/s to and from its clients while "
                f"converging; {node['mem_mb']} MB"
            )
    if as_json:
        timed = [r for r in runs if r["transport"] != "nats"]  # in-process, or the cluster
        print(
            json.dumps(
                {
                    "converge_s": {str(r["hosts"]): r["converge_s"] for r in timed},
                    "peak_rss_mb": {str(r["hosts"]): r["peak_rss_mb"] for r in timed},
                    "nats_deliveries": deliveries,
                    "nats_cluster": nats_cluster,
                    "runs": runs,
                }
            )
        )
