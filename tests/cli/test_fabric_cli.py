"""``cascade fabric status``: the hosts read from an initialised data dir, as a table, a
summary line and JSON; an uninitialised data dir is one line and a non-zero exit."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

from cascade.config import Settings
from cascade.fabric.goal import PortSpec
from cascade.services import Services
from tests.cli.test_cli import cascade


def test_status_lists_hosts_and_counts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert cascade("init", "--data-dir", str(data)).returncode == 0
    services = Services(Settings(data_dir=data))
    try:
        services.fabric.register_host("h1", "192.0.2.1")
        services.fabric.register_host("h2", "192.0.2.2")
        services.fabric.create_network("n1", 5001, "10.1.0.0/16")
        services.fabric.add_port(PortSpec("p1", "n1", "h2", "02:00:00:00:00:01", "10.1.0.1"))
        services.fabric.register_host("h3", "192.0.2.3")
        icmp = ({"direction": "ingress", "protocol": "icmp"},)
        ruled = PortSpec("p3", "n1", "h3", "02:00:00:00:00:03", "10.1.0.3", icmp, True)
        services.fabric.add_port(ruled)
    finally:
        services.close()

    wide = {"COLUMNS": "160"}  # the table's headers on one line, whatever runs the test
    done = cascade("fabric", "status", "--data-dir", str(data), "--json", env=wide)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert (figures["converged"], figures["lagging"], figures["rules_not_enforced"]) == (1, 2, 1)
    assert [h["name"] for h in figures["hosts"]] == ["h1", "h2", "h3"]
    h1, h2, h3 = figures["hosts"]
    assert h1 == {
        "name": "h1",
        "tunnel_ip": "192.0.2.1",
        "revision": 0,
        "applied_revision": 0,
        "networks_behind": 0,
        "converged": True,
        "acked_at": None,
        "enforces_rules": False,
        "ports_with_rules": 0,
        "rules_enforced": True,
    }
    assert (h2["revision"], h2["converged"], h2["networks_behind"]) == (1, False, 1)
    assert (h3["ports_with_rules"], h3["rules_enforced"]) == (1, False)
    assert "3 hosts: 1 converged, 2 lagging, 1 holding security rules" in done.stdout
    assert "rules enforced" in done.stdout
    assert "192.0.2.1" in done.stdout
    assert "goal rev" in done.stdout

    lagging = cascade("fabric", "status", "--data-dir", str(data), "--lagging", "--json")
    assert lagging.returncode == 0, lagging.stderr
    assert [h["name"] for h in json.loads(lagging.stdout.strip().splitlines()[-1])["hosts"]] == [
        "h2",
        "h3",
    ]
    limited = cascade("fabric", "status", "--data-dir", str(data), "--limit", "1")
    assert limited.returncode == 0, limited.stderr
    assert "h1" in limited.stdout
    assert "h2" not in limited.stdout
    assert "3 hosts: 1 converged, 2 lagging" in limited.stdout


def test_status_of_an_uninitialised_data_dir_is_one_line(tmp_path: Path) -> None:
    done = cascade("fabric", "status", "--data-dir", str(tmp_path / "none"))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("cascade: ")
    assert "not initialised" in lines[0]


def test_a_bad_fabric_url_is_a_settings_error(tmp_path: Path) -> None:
    done = cascade(
        "fabric", "status", "--data-dir", str(tmp_path), env={"CASCADE_FABRIC_URL": "http://x"}
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "fabric_url" in lines[0]
    assert "nats://host:port" in lines[0]


def test_up_with_an_unreachable_nats_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert cascade("init", "--data-dir", str(data)).returncode == 0
    done = cascade(
        "up",
        "--data-dir",
        str(data),
        "--port",
        "1",
        env={"CASCADE_FABRIC_URL": "nats://127.0.0.1:1"},
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "cannot connect to NATS at nats://127.0.0.1:1" in lines[0]


def test_agent_stops_on_sigint_while_it_connects(tmp_path: Path) -> None:
    """A NATS server that accepts the connection and never answers: SIGINT stops the agent
    (status 0, no traceback) instead of waiting for the connection."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        command = [sys.executable, "-m", "cascade", "agent", "--host", "x", "--vtep", "192.0.2.1"]
        command += ["--dataplane", "memory", "--nats", f"nats://127.0.0.1:{port}"]
        agent = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        try:
            silent.settimeout(60)
            connection, _ = silent.accept()  # it is connecting: its signal handlers are set
            with connection:
                agent.send_signal(signal.SIGINT)
                _, errors = agent.communicate(timeout=5)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
    assert agent.returncode == 0, errors
    assert "Traceback" not in errors
    assert "cannot connect" not in errors  # it stopped; it did not wait for the timeout
