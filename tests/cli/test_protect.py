"""``cascade protect`` against a real ``cascade up`` (one supervised worker) and two real
site-sims: a plan of one server booting from a volume, a checkpoint followed with its
per-volume progress, a restore refused in one line for a flavor the target lacks (run as a
user runs it; the other commands run in this process), then restored at the other site with
the bytes of the checkpoint, and the lists showing RPO and RTO. Then a server on a Cascade
network stretched over both sites, holding a service IP: the checkpoint's recorded port in
its view, a bad ``--service-ip`` refused in one line, a failed restore showing what it
removed again at the target, and after site A is SIGKILLed the restore with
``--service-ip``/``--service-ip-to`` showing the port it kept (IP, MAC), the service IP's move
and site A named where the remote ports were not re-pointed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from cascade.cli.clients import SessionClient, login, password_auth_plugin
from cascade.cli.embedded import EmbeddedCascade, EmbeddedSite
from cascade.cli.main import app
from cascade.cli.protect import wait_operation
from cascade.sites.driver import SiteDriver
from tests.cli.test_cli import assert_one_line_error
from tests.conftest import ADMIN_PASSWORD
from tests.engine.conftest import IMAGE, WORKER_ENV, start_site
from tests.protection.vnf import sim_admin

BLOCK = 4 << 20
WRITTEN = b"in the checkpoint " * 8


@dataclass
class Deployment:
    cascade: EmbeddedCascade
    api: SessionClient
    sites: list[EmbeddedSite]

    def env(self) -> dict[str, str]:
        return {"CASCADE_URL": self.cascade.url, "CASCADE_PASSWORD": ADMIN_PASSWORD}

    def protect(self, *args: str) -> Result:
        """``cascade protect ARGS`` in this process (stdout piped, 200 columns)."""
        return CliRunner().invoke(app, ["protect", *args], env={**self.env(), "COLUMNS": "200"})

    def protect_process(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``cascade protect ARGS`` as a user runs it: errors as ``main`` prints them."""
        return subprocess.run(
            [sys.executable, "-m", "cascade", "protect", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **self.env()},
            timeout=120,
            check=False,
        )


def succeeded(result: Result) -> None:
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with ExitStack() as stack:
        cascade = stack.enter_context(
            EmbeddedCascade(tmp_path / "cascade", ADMIN_PASSWORD, env=WORKER_ENV, workers=1)
        )
        api = SessionClient(
            login(password_auth_plugin(f"{cascade.url}/identity/v3", ADMIN_PASSWORD)), cascade.url
        )
        sites = []
        for name in ("site-a", "site-b"):
            site = start_site(name, tmp_path)
            stack.callback(site.stop)
            sites.append(site)
            credentials = {"username": "admin", "password": ADMIN_PASSWORD, "project_name": "admin"}
            spec = {
                "name": name,
                "region_name": site.region,
                "identity_url": site.auth_url,
                "credentials": credentials,
            }
            api.call("POST", "/v1/sites", spec, 201)
        yield Deployment(cascade, api, sites)


def _volume_data(site: EmbeddedSite, volume_id: str, data: bytes | None = None) -> bytes:
    """Write ``data`` at block 3 of the volume, or read what is there."""
    session = SiteDriver(site.access()).connection.session
    url = f"{site.url}/sim/v1/volumes/{volume_id}/data"
    if data is not None:
        session.put(url, params={"offset": 3 * BLOCK}, data=data)
        return data
    answer = session.get(url, params={"offset": 3 * BLOCK, "length": len(WRITTEN)})
    return bytes(answer.content)


def _server(site: EmbeddedSite, **extra: Any) -> dict[str, Any]:
    """The spec of server vnf-1 at ``site``, booting from a 1 GiB volume."""
    spec = {"name": "vnf-1", "site": site.site_name, "flavor": "m1.tiny", "image": IMAGE}
    return spec | {"boot_volume_gb": 1, **extra}


def test_plan_checkpoint_and_restore_from_the_command_line(deployment: Deployment) -> None:
    api, (source, target) = deployment.api, deployment.sites
    accepted = api.call("POST", "/v1/servers", _server(source), 202)
    wait_operation(api, accepted["operation"]["id"])
    server_id = accepted["server"]["id"]

    too_often = deployment.protect_process(
        "plan", "create", "vnf", "--server", server_id, "--target", "site-b", "--every", "30"
    )
    assert too_often.returncode == 1
    assert_one_line_error(too_often, "checkpoint_every_s")
    made = deployment.protect(
        "plan", "create", "vnf", "--server", server_id, "--target", "site-b", "--every", "3600"
    )
    succeeded(made)
    assert "servers 1, volumes 1 at site-a; protected for site-b" in made.stdout
    (plan,) = api.call("GET", "/v1/protection-plans")["plans"]
    assert plan["checkpoint_every_s"] == 3600
    (volume_id,) = plan["members"][0]["volumes"]
    _volume_data(source, volume_id, WRITTEN)

    taken = deployment.protect("checkpoint", "vnf")
    succeeded(taken)
    fragments = ("server vnf-1", "vnf-1 /dev/vda", "2/2 blocks", "MB read", "MB stored")
    for fragment in (*fragments, "freeze window"):
        assert fragment in taken.stdout, fragment
    (checkpoint,) = api.call("GET", "/v1/checkpoints")["checkpoints"]
    listed = deployment.protect("checkpoints", "--plan", "vnf")
    assert checkpoint["id"] in listed.stdout
    assert "available" in listed.stdout

    refused = deployment.protect_process("restore", checkpoint["id"], "--flavor", "m1.tiny=m9.none")
    assert refused.returncode == 1
    assert_one_line_error(refused, "site site-b has no flavor 'm9.none'")
    assert api.call("GET", "/v1/restores")["restores"] == []

    restored = deployment.protect("restore", checkpoint["id"], "--flavor", "m1.tiny=m1.small")
    succeeded(restored)
    for fragment in ("2/2 blocks written", "verified ✓", "server vnf-1", "ACTIVE", "RTO "):
        assert fragment in restored.stdout, fragment
    (restore,) = api.call("GET", "/v1/restores")["restores"]
    assert restore["status"] == "completed"
    assert _volume_data(target, restore["volumes"][volume_id]["volume"]) == WRITTEN

    restores = deployment.protect("restores")
    assert restore["id"] in restores.stdout
    assert "completed" in restores.stdout
    plans = deployment.protect("plans")
    row = r"vnf .* site-a → site-b +vnf-1 \(1 volumes\) +ACTIVE +\d+\.\d\d s +60m00s +\S"
    assert re.search(row, plans.stdout), plans.stdout  # its RPO, schedule and next checkpoint


def _accepted(api: SessionClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body`` to ``path``, wait for its operation; the answer."""
    accepted: dict[str, Any] = api.call("POST", path, body, 202)
    wait_operation(api, accepted["operation"]["id"])
    return accepted


def test_restore_onto_a_stretched_network_with_its_service_ip(deployment: Deployment) -> None:
    api, (source, target) = deployment.api, deployment.sites
    network = {"name": "vnf-net", "cidr": "10.84.0.0/24", "sites": ["site-a", "site-b"]}
    _accepted(api, "/v1/networks", network)
    spec = _server(source, port={"network": "vnf-net"})
    server_id = _accepted(api, "/v1/servers", spec)["server"]["id"]
    port = api.call("GET", f"/v1/servers/{server_id}")["server"]["port"]
    sip = {"network": "vnf-net", "holder": server_id, "address": "10.84.0.100"}
    sip_id = _accepted(api, "/v1/service-ips", sip)["service_ip"]["id"]
    succeeded(
        deployment.protect("plan", "create", "vnf", "--server", server_id, "--target", "site-b")
    )
    succeeded(deployment.protect("checkpoint", "vnf"))
    (listed,) = api.call("GET", "/v1/checkpoints")["checkpoints"]
    checkpoint = api.call("GET", f"/v1/checkpoints/{listed['id']}")["checkpoint"]
    assert checkpoint["ports"] == {
        server_id: {
            "port": port["id"],
            "network_id": port["network_id"],
            "network": "vnf-net",
            "ip": port["ip"],
            "mac": port["mac"],
        }
    }

    for wrong, message in (
        (["--service-ip", "no-such-ip"], "Unknown service IP 'no-such-ip'"),
        (["--service-ip", sip_id, "--service-ip-to", "vnf-9"], "'vnf-9' names no single server"),
        (["--service-ip-to", "vnf-1"], "give service_ip"),
    ):
        refused = deployment.protect_process("restore", checkpoint["id"], *wrong)
        assert refused.returncode == 1, refused
        assert_one_line_error(refused, message)
    assert api.call("GET", "/v1/restores")["restores"] == []

    booting = {"method": "POST", "path_prefix": "/compute/v2.1/servers", "rate": 1, "status": 400}
    sim_admin(target, "PUT", "/faults", route_errors=[booting])
    failed = deployment.protect_process("restore", checkpoint["id"], "--service-ip", sip_id)
    sim_admin(target, "DELETE", "/faults")
    assert failed.returncode == 1
    assert_one_line_error(failed, "failed")
    (restore,) = api.call("GET", "/v1/restores")["restores"]
    assert "clean-up of the failed restore" in failed.stdout, failed.stdout
    for kind, removed in (
        ("server", restore["cleanup"]["servers"]),
        ("volume", restore["cleanup"]["volumes"]),
    ):
        assert removed, restore["cleanup"]
        for ident in removed:
            assert re.search(rf"{kind} +{ident} +removed", failed.stdout), failed.stdout

    source.kill()  # site A is lost
    restored = deployment.protect(
        "restore", checkpoint["id"], "--service-ip", sip_id, "--service-ip-to", "vnf-1"
    )
    succeeded(restored)
    shown = restored.stdout
    ports_row = rf"vnf-1 +vnf-net +{re.escape(port['ip'])} +{port['mac']} +{port['id']} \(moved\)"
    assert re.search(ports_row, shown), shown
    sip_row = r"10\.84\.0\.100 +vnf-1 +moved +vnf-1 +site-b +\d+\.\d\d s +site-a"
    assert re.search(sip_row, shown), shown
    assert re.search(r"service IP 10\.84\.0\.100 .*→ vnf-1", shown), shown  # its progress row
    _, remote = shown.split("remote ports not re-pointed")
    assert re.search(r"\n *site-a +\S", remote), shown
