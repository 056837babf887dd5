"""``cascade protect`` against a real ``cascade up`` (one supervised worker) and two real
site-sims: a plan of one server booting from a volume, a checkpoint followed with its
per-volume progress, a restore refused in one line for a flavor the target lacks (run as a
user runs it; the other commands run in this process), then restored at the other site with
the bytes of the checkpoint, and the lists showing RPO and RTO."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

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


def test_plan_checkpoint_and_restore_from_the_command_line(deployment: Deployment) -> None:
    api, (source, target) = deployment.api, deployment.sites
    spec = {
        "name": "vnf-1",
        "site": source.site_name,
        "flavor": "m1.tiny",
        "image": IMAGE,
        "boot_volume_gb": 1,
    }
    accepted = api.call("POST", "/v1/servers", spec, 202)
    wait_operation(api, accepted["operation"]["id"])
    server_id = accepted["server"]["id"]

    made = deployment.protect("plan", "create", "vnf", "--server", server_id, "--target", "site-b")
    succeeded(made)
    assert "servers 1, volumes 1 at site-a; protected for site-b" in made.stdout
    (plan,) = api.call("GET", "/v1/protection-plans")["plans"]
    (volume_id,) = plan["members"][0]["volumes"]
    _volume_data(source, volume_id, WRITTEN)

    taken = deployment.protect("checkpoint", "vnf")
    succeeded(taken)
    for fragment in ("vnf-1 /dev/vda", "2/2 blocks", "MB read", "MB stored", "freeze window"):
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
    row = r"vnf .* site-a → site-b +vnf-1 \(1 volumes\) +ACTIVE +\d+\.\d\d s"
    assert re.search(row, plans.stdout), plans.stdout  # its RPO in seconds
