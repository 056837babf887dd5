"""openstacksdk, the ``openstack`` CLI and Cascade's site driver against a running
``cascade site-sim``: if a real client rejects a response, the sim is wrong."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cascade.cli.embedded import EmbeddedSite
from cascade.sites.driver import SiteCallFailed, SiteDriver

PASSWORD = "real-clients-site-pw"
OPENSTACK = str(Path(sys.executable).parent / "openstack")
IMAGE_BYTES = os.urandom(200_000)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSite]:
    data_dir = tmp_path_factory.mktemp("site-real-clients") / "site-a"
    args = ["--build-seconds", "0.3"]
    env = {"CASCADE_PASSWORD_HASH_ROUNDS": "4"}
    with EmbeddedSite("site-a", data_dir, PASSWORD, args=args, env=env, region="RegionA") as site:
        yield site


@pytest.fixture(scope="module")
def driver(sim: EmbeddedSite) -> SiteDriver:
    return SiteDriver(sim.access())


def run_openstack(sim: EmbeddedSite, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "OS_AUTH_URL": sim.auth_url,
        "OS_USERNAME": "admin",
        "OS_PASSWORD": PASSWORD,
        "OS_PROJECT_NAME": "admin",
        "OS_USER_DOMAIN_ID": "default",
        "OS_PROJECT_DOMAIN_ID": "default",
        "OS_IDENTITY_API_VERSION": "3",
        "OS_REGION_NAME": "RegionA",
        "OS_INTERFACE": "public",
    }
    return subprocess.run(
        [OPENSTACK, *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def openstack(sim: EmbeddedSite, *args: str, parse: bool = True) -> Any:
    done = run_openstack(sim, *args, *(["-f", "json"] if parse else []))
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return json.loads(done.stdout) if parse else done.stdout


def test_sdk_images_networks_servers(driver: SiteDriver) -> None:
    conn = driver.connection
    image = conn.image.create_image(
        name="sdk-image", data=IMAGE_BYTES, disk_format="raw", container_format="bare"
    )
    image = conn.image.get_image(image.id)
    assert image.checksum == hashlib.md5(IMAGE_BYTES, usedforsecurity=False).hexdigest()
    assert image.hash_value == hashlib.sha512(IMAGE_BYTES).hexdigest()
    assert conn.image.download_image(image).content == IMAGE_BYTES
    net = conn.network.create_network(name="sdk-net")
    conn.network.create_subnet(network_id=net.id, cidr="192.168.7.0/24", ip_version=4)
    port = conn.network.create_port(network_id=net.id, name="sdk-port")
    assert port.fixed_ips[0]["ip_address"].startswith("192.168.7.")
    server = conn.compute.create_server(
        name="sdk-vm", flavor_id="1", image_id=image.id, networks=[{"uuid": net.id}]
    )
    server = conn.compute.wait_for_server(server, wait=30, interval=0.2)
    assert server.status == "ACTIVE"
    assert server.compute_host.startswith("site-a-host-")
    (agent,) = conn.network.agents(host=server.compute_host)  # the bound host's VTEP, as
    assert agent.agent_type == "Open vSwitch agent"  # Cascade reads it
    assert agent.configuration["tunneling_ip"].startswith("198.18.")
    assert agent.configuration["tunnel_types"] == ["vxlan"]
    assert "sdk-vm" in {s.name for s in conn.compute.servers()}
    driver.quiesce(server.id)
    driver.unquiesce(server.id)
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=30, interval=0.2)


def _sim_checksum(driver: SiteDriver, sim: EmbeddedSite, volume_id: str) -> str:
    answer = driver.connection.session.get(f"{sim.url}/sim/v1/volumes/{volume_id}/checksum")
    return str(answer.json()["sha256"])


def test_sdk_volumes_snapshots_backups_groups(driver: SiteDriver, sim: EmbeddedSite) -> None:
    conn = driver.connection
    volume = conn.block_storage.create_volume(size=1, name="sdk-vol")
    volume = conn.block_storage.wait_for_status(volume, "available", wait=30, interval=0.2)
    conn.session.put(  # bytes a restore must bring back
        f"{sim.url}/sim/v1/volumes/{volume.id}/data",
        params={"offset": 4096},
        data=os.urandom(65536),
    )
    snapshot = conn.block_storage.create_snapshot(volume_id=volume.id, name="sdk-snap")
    conn.block_storage.wait_for_status(snapshot, "available", wait=30, interval=0.2)
    backup = conn.block_storage.create_backup(volume_id=volume.id, name="sdk-backup")
    backup = conn.block_storage.wait_for_status(backup, "available", wait=60, interval=0.2)
    restored = conn.block_storage.restore_backup(backup, name="sdk-restored")
    copy = conn.block_storage.wait_for_status(
        conn.block_storage.get_volume(restored["volume_id"]), "available", wait=60, interval=0.2
    )
    assert _sim_checksum(driver, sim, copy.id) == _sim_checksum(driver, sim, volume.id)
    group_type = conn.block_storage.create_group_type(name="sdk-consistent")
    volume_type = next(iter(conn.block_storage.types()))
    group = conn.block_storage.create_group(
        group_type=group_type.id, volume_types=[volume_type.id], name="sdk-group"
    )
    member = conn.block_storage.create_volume(
        size=1, name="member", group_id=group.id, volume_type=volume_type.id
    )
    conn.block_storage.wait_for_status(member, "available", wait=30, interval=0.2)
    group_snapshot = conn.block_storage.create_group_snapshot(group_id=group.id, name="sdk-gsnap")
    conn.block_storage.wait_for_status(group_snapshot, "available", wait=30, interval=0.2)


def test_openstack_cli_scenarios(sim: EmbeddedSite, tmp_path: Path) -> None:
    image_file = tmp_path / "image.raw"
    image_file.write_bytes(IMAGE_BYTES)
    image = openstack(
        sim,
        "image",
        "create",
        "--file",
        str(image_file),
        "--disk-format",
        "raw",
        "--container-format",
        "bare",
        "cli-image",
    )
    saved = tmp_path / "saved.raw"
    openstack(sim, "image", "save", "--file", str(saved), image["id"], parse=False)
    assert saved.read_bytes() == IMAGE_BYTES
    net = openstack(sim, "network", "create", "cli-net")
    openstack(
        sim,
        "subnet",
        "create",
        "--network",
        net["id"],
        "--subnet-range",
        "10.20.0.0/24",
        "cli-subnet",
    )
    port = openstack(sim, "port", "create", "--network", net["id"], "cli-port")
    assert port["fixed_ips"]
    server = openstack(
        sim,
        "server",
        "create",
        "--flavor",
        "m1.tiny",
        "--image",
        image["id"],
        "--network",
        net["id"],
        "--wait",
        "cli-vm",
    )
    assert server["status"] == "ACTIVE"
    assert "cli-vm" in {s["Name"] for s in openstack(sim, "server", "list")}
    assert openstack(sim, "server", "show", "cli-vm")["status"] == "ACTIVE"
    volume = openstack(sim, "volume", "create", "--size", "1", "cli-vol")
    openstack(sim, "volume", "show", volume["id"])
    openstack(sim, "volume", "snapshot", "create", "--volume", volume["id"], "cli-snap")
    backup = openstack(sim, "volume", "backup", "create", "--name", "cli-backup", volume["id"])
    deadline = time.monotonic() + 60
    while openstack(sim, "volume", "backup", "show", backup["id"])["status"] != "available":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    restored = openstack(sim, "volume", "backup", "restore", backup["id"], "cli-restored")
    assert restored["volume_id"]
    openstack(sim, "server", "delete", "--wait", "cli-vm", parse=False)


def test_driver_names_the_site_and_call_on_permanent_errors(driver: SiteDriver) -> None:
    with pytest.raises(SiteCallFailed) as failure:
        driver.call("show server nope", lambda c: c.compute.get_server("nope"))
    assert failure.value.site == "site-a"
    assert failure.value.http_status == 404
    assert "show server nope" in str(failure.value)


def openstack_fails(sim: EmbeddedSite, *args: str) -> str:
    """Run a command that must fail; its stderr."""
    done = run_openstack(sim, *args)
    assert done.returncode != 0, done.stdout
    return done.stderr


def test_openstack_cli_everyday_answers(sim: EmbeddedSite, tmp_path: Path) -> None:
    """What a CLI user sees at once: the Image column, compute services, Nova's 409 for an
    action in the wrong state, device names in attachment order, role assignment names."""
    image_file = tmp_path / "everyday.raw"
    image_file.write_bytes(IMAGE_BYTES)
    image = openstack(sim, "image", "create", "--file", str(image_file), "everyday-image")
    net = openstack(sim, "network", "create", "everyday-net")
    openstack(
        sim, "subnet", "create", "--network", net["id"], "--subnet-range", "10.30.0.0/24",
        "everyday-subnet",
    )  # fmt: skip
    server = openstack(
        sim, "server", "create", "--flavor", "m1.tiny", "--image", image["id"],
        "--network", net["id"], "--wait", "everyday-vm",
    )  # fmt: skip
    listed = {s["Name"]: s for s in openstack(sim, "server", "list")}
    assert listed["everyday-vm"]["Image"] == "everyday-image"
    services = openstack(sim, "compute", "service", "list")
    assert "nova-compute" in {s["Binary"] for s in services}
    assert {s["State"] for s in services} == {"up"}
    openstack(sim, "server", "stop", server["id"], parse=False)
    deadline = time.monotonic() + 60
    while openstack(sim, "server", "show", server["id"])["status"] != "SHUTOFF":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    refused = openstack_fails(sim, "server", "reboot", "--soft", server["id"])
    assert "409" in refused
    assert "vm_state stopped" in refused
    devices = []
    for name in ("everyday-vol-1", "everyday-vol-2"):
        volume = openstack(sim, "volume", "create", "--size", "1", name)
        while openstack(sim, "volume", "show", volume["id"])["status"] != "available":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        attached = openstack(sim, "server", "add", "volume", server["id"], volume["id"])
        devices.append(attached["Device"])
    assert devices == ["/dev/vdb", "/dev/vdc"]
    assignments = openstack(sim, "role", "assignment", "list", "--names", "--user", "admin")
    assert {"admin@Default"} == {a["User"] for a in assignments}
    assert "admin@Default" in {a["Project"] for a in assignments}
    assert "admin" in {a["Role"] for a in assignments}
