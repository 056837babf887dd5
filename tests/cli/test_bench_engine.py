"""``cascade bench engine`` runs end to end at tiny sizes and ends with its JSON figures,
raw DBOS's beside Cascade's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def test_bench_engine_prints_json_last() -> None:
    args = ["--workers", "1", "--ops", "20", "--site-ops", "0", "--no-recovery", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "cascade", "bench", "engine", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "CASCADE_PASSWORD_HASH_ROUNDS": "4"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["database"] == "sqlite"
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
    assert "recovery_s" not in figures


def test_bench_engine_rejects_bad_worker_counts() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cascade", "bench", "engine", "--workers", "0,x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "--workers" in done.stderr
