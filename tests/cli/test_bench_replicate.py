"""``cascade bench replicate`` runs end to end at tiny sizes (real Cascade, worker and
site-sims, started by the command) and ends with its JSON figures: the resumed copy resent
nothing it had staged, the audit found every injected drift and the repair left none."""

from __future__ import annotations

import json
import os
import subprocess
import sys

KEYS = {
    "image_copy_mb_per_s",
    "raw_download_mb_per_s",
    "image_copy_vs_raw_download",
    "audit_pass_s",
    "audit_repair_s",
}
MiB = 1 << 20


def _bench(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cascade", "bench", "replicate", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "CASCADE_PASSWORD_HASH_ROUNDS": "4"},
    )


def test_bench_replicate_prints_json_last_with_drift_repaired() -> None:
    args = ["--image-mb", "8", "--chunk-mb", "1", "--audit-sites", "2", "--resources", "20"]
    done = _bench(*args, "--json", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures) >= KEYS | {"resume_resent_fraction", "aims_met"}
    assert all(figures[key] > 0 for key in KEYS)
    # stopped once 4 of the 8 chunks were staged; the chunks then in flight (at most 3)
    # finish, and the resume sends only the rest: nothing twice
    assert 4 * MiB <= figures["resume_sent_before_bytes"] <= 7 * MiB
    assert figures["resume_sent_before_bytes"] + figures["resume_sent_after_bytes"] == 8 * MiB
    assert figures["resume_resent_fraction"] == 0
    # 1% of 20 flavors is less than one: one changed at each of the 2 targets; the repair
    # job the first finding starts may reach the second target before the pass does
    assert figures["audit_drift_in_clean_pass"] == 0
    assert figures["drift_injected"] == 2
    assert 1 <= figures["drift_found"] <= 2
    assert figures["drift_left_after_repair"] == 0
    assert figures["aims_met"]["drift found and repaired"] is True


def test_bench_replicate_refuses_bad_sizes() -> None:
    done = _bench("--image-mb", "0", timeout=60)
    assert done.returncode == 2
    assert "--image-mb" in done.stderr
    assert "Traceback" not in done.stderr
