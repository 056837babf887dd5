"""The benchmark commands keep working and end with their JSON figures (not timed here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("args", "keys"),
    [
        (
            ["identity", "--seconds", "0.5", "--rounds", "4", "--connections", "2"],
            {"issue_per_s", "validate_per_s", "rescope_per_s", "formatter_validate_per_s"},
        ),
        (
            ["site", "--seconds", "0.5", "--backup-mib", "8"],
            {"calls_per_s", "backup_mb_per_s", "restore_mb_per_s", "baseline_copy_fsync_mb_per_s"},
        ),
        (
            [
                *("clients", "--seconds", "0.5", "--rounds", "4", "--probes", "20"),
                *("--repeats", "1", "--no-keystone"),  # one pair per loop: the keys, not the ratio
            ],
            {
                "validate_raw_per_s",
                "validate_keystoneauth_per_s",
                "submit_probes_keystoneauth_per_s",
                "server_create_delete_raw_per_s",
            },
        ),
    ],
    ids=["identity", "site", "clients"],
)
def test_bench_prints_json_last(args: list[str], keys: set[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cascade", "bench", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "CASCADE_PASSWORD_HASH_ROUNDS": "4"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert keys <= set(figures)
    assert all(figures[key] > 0 for key in keys)
