"""The partition contract with a real network cut: the master runs in a network namespace
of its own, the replica follows it over a veth pair, and the test takes the link down while
the master revokes a token and rotates its keys (forced, the site being unreachable). The
cut-off replica keeps validating; when the link comes back up it catches up by itself: the
revocation, the keys, every row."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cascade.cli.embedded import EmbeddedCascade, EmbeddedReplica
from cascade.config import load_settings
from cascade.identity.keys import KeyRepository, key_set_id
from cascade.services import Services
from tests.identity.test_partition import identity_rows
from tests.identity.test_replica_process import PASSWORD, login, until, validates

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="needs root and iproute2 to make a network namespace",
)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class Link:
    namespace: str
    host_side: str  # the veth end in the test's namespace: down = cut
    master_address: str  # the master's address, inside the namespace


@pytest.fixture
def link() -> Iterator[Link]:
    tag = os.getpid() % 10000
    found = Link(f"cascade-part-{tag}", f"cph{tag}", f"10.213.{tag % 250}.2")
    subnet = found.master_address.rsplit(".", 1)[0]
    ip("netns", "add", found.namespace)
    try:
        ip("link", "add", found.host_side, "type", "veth", "peer", "name", f"cpn{tag}")
        ip("link", "set", f"cpn{tag}", "netns", found.namespace)
        ip("addr", "add", f"{subnet}.1/30", "dev", found.host_side)
        ip("link", "set", found.host_side, "up")
        ip("-n", found.namespace, "addr", "add", f"{found.master_address}/30", "dev", f"cpn{tag}")
        ip("-n", found.namespace, "link", "set", f"cpn{tag}", "up")
        ip("-n", found.namespace, "link", "set", "lo", "up")
        yield found
    finally:
        subprocess.run(["ip", "link", "del", found.host_side], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", found.namespace], check=False, capture_output=True)


class NamespacedMaster(EmbeddedCascade):
    """``cascade up`` inside the link's namespace, listening on its address there."""

    def __init__(self, data_dir: Path, link: Link) -> None:
        env = {"CASCADE_PASSWORD_HASH_ROUNDS": "4", "CASCADE_HOST": "0.0.0.0"}
        super().__init__(data_dir, PASSWORD, env=env)
        self.launcher = ("ip", "netns", "exec", link.namespace)
        self.url = f"http://{link.master_address}:{self.port}"
        self.namespace = link.namespace

    def revoke_from_inside(self, admin: str, token: str) -> None:
        """A call to the master from its own namespace: it works while the link is down."""
        code = (
            "import httpx, sys; r = httpx.delete(sys.argv[1], headers={'X-Auth-Token': "
            "sys.argv[2], 'X-Subject-Token': sys.argv[3]}); sys.exit(r.status_code != 204)"
        )
        url = f"http://127.0.0.1:{self.port}/identity/v3/auth/tokens"
        command = ["ip", "netns", "exec", self.namespace, sys.executable, "-c", code]
        subprocess.run([*command, url, admin, token], check=True, timeout=60)


def rescoped(url: str, token: str) -> str:
    """A token issued by the token method from ``token``, scoped to the admin project."""
    body = {
        "auth": {
            "identity": {"methods": ["token"], "token": {"id": token}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }
    }
    answer = httpx.post(f"{url}/identity/v3/auth/tokens", json=body)
    assert answer.status_code == 201, answer.text
    return answer.headers["X-Subject-Token"]


def keys_of(data_dir: Path) -> str:
    return key_set_id(KeyRepository(data_dir / "fernet-keys").read_all())


@pytest.mark.timeout(180)
def test_a_replica_cut_off_by_link_down_catches_up_with_a_revocation_and_a_rotation(
    tmp_path: Path, link: Link
) -> None:
    with (
        NamespacedMaster(tmp_path / "master", link) as master,
        EmbeddedReplica(tmp_path / "replica", master.url, PASSWORD) as replica,
    ):
        admin = login(master.url, "admin", PASSWORD)
        until(lambda: validates(replica.url, admin, admin), timeout=30)
        doomed = login(master.url, "admin", PASSWORD)
        until(lambda: validates(replica.url, admin, doomed), timeout=5)
        unscoped = login(master.url, "admin", PASSWORD, None)
        # Issued before the forced rotation: project-scoped and unscoped, by password and by
        # the token method, at the master and at the replica.
        earlier = [admin, unscoped, rescoped(master.url, unscoped),
                   login(replica.url, "admin", PASSWORD), rescoped(replica.url, admin)]  # fmt: skip

        ip("link", "set", link.host_side, "down")  # the site is cut off
        master.revoke_from_inside(admin, doomed)
        settings = load_settings(data_dir=master.data_dir, identity_max_active_keys=6)
        services = Services(settings)
        try:
            forced = services.key_rotation().rotate(timeout=2, force=True)
        finally:
            services.close()
        assert forced.forced
        assert len(forced.missing) == 1  # the cut-off replica, named in the report
        for token in earlier:  # cut off, still validating every one
            assert validates(replica.url, admin, token)
        assert validates(replica.url, admin, doomed)  # it has not heard of the revocation

        ip("link", "set", link.host_side, "up")
        until(lambda: not validates(replica.url, admin, doomed), timeout=60)
        until(lambda: keys_of(replica.data_dir) == keys_of(master.data_dir), timeout=30)
        until(lambda: identity_rows(replica.data_dir) == identity_rows(master.data_dir), 30)
        assert validates(replica.url, admin, login(master.url, "admin", PASSWORD))
        for token in earlier:  # healed, and at the master: still valid
            assert validates(replica.url, admin, token)
            assert validates(master.url, admin, token)
