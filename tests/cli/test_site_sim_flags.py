"""``cascade site-sim`` fault flags set the same faults as /sim/v1/faults; bad ones are one
line and a non-zero exit."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest

from cascade.cli.embedded import EmbeddedSite
from cascade.cli.site_sim import apply_fault_flags
from cascade.errors import CascadeError
from cascade.sites.driver import SiteDriver
from cascade_sim.faults import Faults
from tests.cli.test_cli import cascade
from tests.conftest import ADMIN_PASSWORD


def test_flags_become_faults() -> None:
    faults = Faults()
    apply_fault_flags(
        faults, ["compute=0.2", "*=0.01"], ["POST:/compute=0.5", "/volume=1"], True, ["db-1"]
    )
    assert faults.latency == {"compute": 0.2, "*": 0.01}
    assert [(r.method, r.path_prefix, r.rate) for r in faults.route_errors] == [
        ("POST", "/compute", 0.5),
        ("*", "/volume", 1.0),
    ]
    assert faults.unavailable is True
    assert faults.quiesce_failures == {"db-1"}
    assert faults.error_for("POST", "/volume/v3/volumes") == 500
    assert faults.error_for("GET", "/network/v2.0/ports") is None


@pytest.mark.parametrize("latency", ["compute", "compute=fast", "=1"])
def test_bad_flags_are_refused(latency: str) -> None:
    with pytest.raises(CascadeError, match="--latency"):
        apply_fault_flags(Faults(), [latency], [], False, [])


def test_bad_flag_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "site"
    done = cascade("site-sim", "--name", "x", "--data-dir", str(data_dir), "--latency", "oops")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == ["cascade: --latency takes KEY=VALUE, got 'oops'"]
    assert not data_dir.exists()


def test_busy_port_is_one_line_before_any_banner(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data_dir = tmp_path / "site"
        done = cascade(
            "site-sim", "--name", "x", "--data-dir", str(data_dir), "--port", str(port),
            env={"CASCADE_SITE_ADMIN_PASSWORD": "pw"},
        )  # fmt: skip
    assert done.returncode != 0
    assert done.stdout == ""  # no banner: nothing claimed to be serving
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"127.0.0.1:{port}" in lines[0]
    assert "in use" in lines[0]
    assert not data_dir.exists()


def test_the_password_cost_factor_comes_from_the_environment(tmp_path: Path) -> None:
    """``CASCADE_PASSWORD_HASH_ROUNDS`` (or ``--password-hash-rounds``) is the bcrypt cost
    of the region's stored passwords, as for ``cascade up``: each login costs 2^N rounds."""
    site = EmbeddedSite(
        "x", tmp_path / "x", ADMIN_PASSWORD, env={"CASCADE_PASSWORD_HASH_ROUNDS": "5"}
    )
    site.start()
    try:
        SiteDriver(site.access()).call("log in", lambda c: c.identity.get_token())
    finally:
        site.stop()
    with sqlite3.connect(tmp_path / "x" / "identity" / "cascade.db") as db:
        hashes = [row[0] for row in db.execute("SELECT password_hash FROM users")]
    assert {h[:7] for h in hashes} == {"$2b$05$"}  # bcrypt, cost 5
