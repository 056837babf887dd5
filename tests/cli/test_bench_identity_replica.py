"""``cascade bench identity --replica`` at tiny sizes: a real master and replica process, two
simulated replicas, one Fernet key rotation across them and the process, no real Keystone (its
own bench part is exercised where it is installed by the full run, not here: starting it takes
~10 s). Figures are checked for shape and sanity, not speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.timeout(120)
def test_replica_mode_prints_its_figures_as_json_last() -> None:
    args = ["--seconds", "0.5", "--rounds", "4", "--connections", "2"]
    args += ["--replicas", "1,2", "--changes", "2", "--rotations", "1", "--no-keystone", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "cascade", "bench", "identity", "--replica", *args],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
        env={**os.environ, "CASCADE_PASSWORD_HASH_ROUNDS": "4"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("validate_per_s", "replica_validate_per_s", "replica_validate_per_s_2conn"):
        assert figures[key] > 0, key
        assert figures[key.replace("per_s", "errors")] == 0, key
    assert figures["replica_vs_master_validate_ratio"] > 0
    for prefix in ("visible_1_replica", "visible_2_replicas"):
        assert 0 < figures[f"{prefix}_p50_s"] <= figures[f"{prefix}_max_s"] < 30
    assert figures["visibility_changes"] == 2
    assert 0 < figures["rotation_2_sites_p50_s"] <= figures["rotation_2_sites_max_s"] < 30
    assert figures["rotations"] == 1
    # the two simulated replicas and the process: all registered, all held the new set
    assert figures["rotation_sites_registered"] == figures["rotation_sites_holding"] == 3
    assert figures["rotation_tokens_checked"] > 0
    assert figures["rotation_token_errors"] == 0
    assert not any(key.startswith("keystone") for key in figures)
