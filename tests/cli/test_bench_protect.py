"""``cascade bench protect`` runs end to end at tiny sizes (real Cascade, worker and
site-sims, started by the command) and ends with its JSON figures, the restores verified."""

from __future__ import annotations

import json
import os
import subprocess
import sys

KEYS = {
    "full_backup_mb_per_s",
    "incremental_mb_per_s",
    "incremental_read_fraction",
    "copy_sync_mb_per_s",
    "restore_mb_per_s",
    "rto_s",
    "freeze_window_s",
    "full_backup_vs_copy_sync",
}


def _bench(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cascade", "bench", "protect", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "CASCADE_PASSWORD_HASH_ROUNDS": "4"},
    )


def test_bench_protect_prints_json_last_with_restores_verified() -> None:
    args = ["--volume-gb", "1", "--fill-mb", "16", "--vms", "1", "--vm-fill-mb", "8"]
    done = _bench(*args, "--hash-mb", "4", "--json", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures) >= KEYS
    assert all(figures[key] > 0 for key in KEYS)
    assert set(figures["hash_rates"]) == {"blake3", "xxh3_128", "sha256"}
    assert set(figures["load_average"]) == {"start", "end"}
    assert figures["restore_verified"] is True
    assert figures["rto_verified"] is True
    # 1% of a 1 GiB volume's 256 blocks: 3 blocks read, as the site counted them too
    assert figures["changed_blocks"] == 3
    assert figures["incremental_read_bytes"] == 3 * (4 << 20)
    assert figures["incremental_read_bytes_at_site"] == figures["incremental_read_bytes"]
    assert figures["aims_met"]["restore verified"] is True


def test_bench_protect_refuses_a_fill_larger_than_the_volume() -> None:
    done = _bench("--volume-gb", "1", "--fill-mb", "2048", timeout=60)
    assert done.returncode == 2
    assert "--fill-mb 2048 is more than the 1 GiB volume" in done.stderr
    assert "Traceback" not in done.stderr
