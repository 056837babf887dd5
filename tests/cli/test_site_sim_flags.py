"""``cascade site-sim`` fault flags set the same faults as /sim/v1/faults; bad ones are one
line and a non-zero exit."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cascade.cli.site_sim import apply_fault_flags
from cascade.errors import CascadeError
from cascade_sim.faults import Faults
from tests.cli.test_cli import cascade


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
