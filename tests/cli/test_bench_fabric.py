"""``cascade bench fabric`` and ``cascade fleet-sim`` run end to end at small sizes (in
process, over NATS, over a NATS cluster the bench starts), end with their JSON figures, and
refuse bad sizes in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import IN_CI, require_service


def cascade(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cascade", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_bench_fabric_prints_json_last() -> None:
    done = cascade("bench", "fabric", "--sizes", "1,300", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures["converge_s"]) == {"1", "300"}
    assert all(0 < s < 60 for s in figures["converge_s"].values())
    assert all(mb > 0 for mb in figures["peak_rss_mb"].values())
    big = figures["runs"][1]
    assert big["exact"] is True
    assert big["acks"] == 302  # each old host once; the new one for its port, then its table
    assert big["deliveries"] >= 300  # the multicast reached every host on the network
    assert figures["nats_deliveries"] == {}  # no --nats given


def test_fleet_sim_over_nats_converges_exactly() -> None:
    require_service("NATS", 4222)
    done = cascade("fleet-sim", "--hosts", "50", "--nats", "nats://127.0.0.1:4222", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["transport"] == "nats"
    assert figures["exact"] is True


@pytest.mark.parametrize(
    "args",
    [
        ("bench", "fabric", "--sizes", "0,x"),
        ("fleet-sim", "--hosts", "0"),
        ("fleet-sim", "--hosts", "200000", "--nats", "nats://127.0.0.1:4222"),
        ("bench", "fabric", "--nats-cluster", "3", "--nats", "nats://127.0.0.1:4222"),
    ],
)
def test_bad_sizes_are_one_line_errors(args: tuple[str, ...]) -> None:
    done = cascade(*args)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1, done.stderr


def test_bench_fabric_over_nats_compares_with_bare_nats() -> None:
    require_service("NATS", 4222)
    done = cascade(
        "bench",
        "fabric",
        "--sizes",
        "5",
        "--nats",
        "nats://127.0.0.1:4222",
        "--nats-agents",
        "20",
        "--nats-changes",
        "3",
        "--json",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    deliveries = figures["nats_deliveries"]
    assert deliveries["agents"] == 20
    assert deliveries["fabric_per_s"] > 0
    assert deliveries["raw_nats_per_s"] > 0
    assert [r["transport"] for r in figures["runs"]] == ["memory", "nats"]
    assert all(r["exact"] for r in figures["runs"])


def test_bench_fabric_over_a_nats_cluster_counts_each_node() -> None:
    if shutil.which("nats-server", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        if IN_CI:
            pytest.fail("nats-server is not installed (CI=true requires it)")
        pytest.skip("nats-server is not installed")
    done = cascade("bench", "fabric", "--nats-cluster", "3", "--sizes", "30", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["nats_cluster"] == 3
    assert set(figures["converge_s"]) == {"30"}
    assert figures["peak_rss_mb"]["30"] > 0
    (run,) = figures["runs"]
    assert run["transport"] == "nats x3"
    assert run["exact"] is True
    nodes = run["nodes"]
    assert [n["node"] for n in nodes] == ["n0", "n1", "n2"]
    # the agents' connections sit on all three nodes: each delivered part of the fan-out
    assert all(n["delivered"] > 0 and n["mem_mb"] > 0 for n in nodes)
    assert sum(n["delivered"] for n in nodes) == run["deliveries"]
    assert sum(n["published"] for n in nodes) == run["messages"]
