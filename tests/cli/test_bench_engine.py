"""``cascade bench engine`` runs end to end at tiny sizes and ends with its JSON figures,
raw DBOS's beside Cascade's, and the costs per operation (CPU; commits on PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import require_service


def _bench(*extra: str, ops: int = 20) -> dict[str, Any]:
    """``cascade bench engine`` with one worker and ``ops`` probes; its last line's figures."""
    args = ["--workers", "1", "--ops", str(ops), "--site-ops", "0", "--no-recovery", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "cascade", "bench", "engine", *args, *extra],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "CASCADE_PASSWORD_HASH_ROUNDS": "4"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "worker_cpu_ms_per_op" in done.stdout  # a row of the table
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def test_bench_engine_prints_json_last() -> None:
    # Server creates too, at a site whose builds take half a second: site steps that wait on
    # the site (I/O-bound), as issue 19's scaling aim measures them.
    figures = _bench("--site-ops", "4", "--site-build-seconds", "0.5", "--clients", "2")
    assert figures["database"] == "sqlite"
    assert figures["clients"] == 2
    assert figures["site_build_seconds"] == 0.5
    assert figures["site_ops_per_s"]["1"] > 0
    assert figures["site_failed"] == {"1": 0}
    assert figures["ops_per_s"]["1"] > 0
    assert figures["failed"] == {"1": 0}
    assert figures["p50_ms"]["1"] <= figures["p99_ms"]["1"]
    assert figures["baseline_tx_per_s"] > 0
    # Raw DBOS in the same run, with as many workers, and the ratio of the two.
    assert figures["raw_dbos_ops_per_s"]["1"] > 0
    assert figures["raw_dbos_failed"] == {"1": 0}
    ratio = figures["ops_per_s"]["1"] / figures["raw_dbos_ops_per_s"]["1"]
    assert figures["ratio"]["1"] == pytest.approx(ratio, rel=0.01)
    assert figures["ratio_to_raw"] == pytest.approx(ratio, rel=0.01)
    # And probes of one empty step each against raw DBOS jobs of one empty step.
    assert figures["step_failed"] == {"1": 0}
    assert figures["raw_dbos_step_failed"] == {"1": 0}
    step_ratio = figures["step_ops_per_s"]["1"] / figures["raw_dbos_step_ops_per_s"]["1"]
    assert figures["ratio_step"]["1"] == pytest.approx(step_ratio, rel=0.01)
    assert figures["ratio_to_raw_step"] == pytest.approx(step_ratio, rel=0.01)
    assert "recovery_s" not in figures
    # CPU per operation of both sides' workers and of the API; SQLite counts no commits.
    ours = ("worker_cpu_ms_per_op", "api_cpu_ms_per_op", "step_worker_cpu_ms_per_op")
    for key in (*ours, "raw_dbos_worker_cpu_ms_per_op"):
        assert figures[key]["1"] > 0, key
    assert figures["commits_per_op"] == {"1": None}
    assert figures["raw_dbos_commits_per_op"] == {"1": None}
    # What the workers spend polling with nothing to run, per second.
    assert figures["idle_worker_cpu_ms_per_s"]["1"] > 0
    assert figures["raw_dbos_idle_worker_cpu_ms_per_s"]["1"] > 0
    assert figures["idle_commits_per_s"] == {"1": None}


def test_bench_engine_counts_commits_on_postgresql() -> None:
    require_service("PostgreSQL", 5432)
    # Enough probes that the idle polling during the batch and the error of what is taken off
    # for it (engine_costs.py: about a second of polling at either end) stay well below what
    # the probes commit: with 20, a slow machine's 69 idle commits/s once gave 1.3 per probe.
    figures = _bench("--database-url", "postgresql+psycopg://postgres@127.0.0.1:5432/test", ops=100)
    assert figures["database"] == "postgresql"
    assert figures["failed"] == {"1": 0}
    assert figures["raw_dbos_failed"] == {"1": 0}
    for key in ("commits_per_op", "raw_dbos_commits_per_op", "worker_cpu_ms_per_op"):
        assert figures[key]["1"] > 0, key
    # The server runs on this machine: its processes' CPU is counted on both sides.
    for key in ("database_cpu_ms_per_op", "raw_dbos_database_cpu_ms_per_op"):
        assert figures[key]["1"] > 0, key
    # Idle workers poll their queues, a transaction each.
    assert figures["idle_commits_per_s"]["1"] > 0
    assert figures["raw_dbos_idle_commits_per_s"]["1"] > 0
    # Every probe commits at least its acceptance and its end; a raw job its enqueue. (Not
    # compared with each other: in a batch this small the idle polling during it, which
    # varies with the batch's duration, outweighs a step's commits; a CI run measured raw
    # DBOS with a step at 21.8 commits per job and without at 28.0.)
    assert figures["commits_per_op"]["1"] >= 2
    assert figures["raw_dbos_commits_per_op"]["1"] >= 1
    assert figures["raw_dbos_step_commits_per_op"]["1"] >= 1


@pytest.mark.parametrize("option", [("--workers", "0,x"), ("--clients", "0")])
def test_bench_engine_rejects_bad_counts(option: tuple[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cascade", "bench", "engine", *option],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert option[0] in done.stderr
