"""``cascade demo`` runs its tour end to end on the embedded default and exits 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from cascade.cli.probes import can_make_namespaces


def run_demo(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cascade", "demo", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "CASCADE_PASSWORD_HASH_ROUNDS": "4", "COLUMNS": "200"},
    )


def test_demo_tour(tmp_path: Path) -> None:
    done = run_demo(tmp_path / "demo")
    assert done.returncode == 0, done.stdout + done.stderr
    for fragment in (
        "logged in as admin",
        "site site-a in region RegionA: registered",
        "RegionB",
        "Servers across sites",
        "site-b validated Cascade's token locally",
        "vnf-site-b",
        "SIGKILL worker",
        "every operation succeeded although worker",
        "exactly one of each at its site",
        "a forged token gets 401",
        "Cascade demo: summary",
        "network vnf-net 10.20.0.0/24",
        "holds remote ports for",
        "moved to the standby at site-b",
        "SIGKILL the site-sim of site-a",
        "4/4 volumes verified, 2 servers ACTIVE; RTO ",
        "verified: every restored data volume holds the bytes written before the checkpoint",
    ):
        assert fragment in done.stdout, fragment
    assert re.search(r"RPO \d+\.\d\d s: the age of the newest restorable", done.stdout)
    assert re.search(r"RTO \d+\.\d\d s: the restore's start", done.stdout)
    if can_make_namespaces():  # the sites ran the Linux dataplane: real packets
        assert "to 10.20.0.4 at site-b: answered" in done.stdout
        assert "first answer from the standby after" in done.stdout
    # A second tour on the same data dir has a new random password: refused in one line.
    again = run_demo(tmp_path / "demo")
    assert again.returncode != 0
    assert "admin login refused" in again.stderr
