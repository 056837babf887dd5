"""A site-sim killed with SIGKILL in the middle of a backup comes back consistent: the backup
is marked error (or completed), the volume's bytes are untouched, and a new backup restores
bit for bit."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from cascade.cli.bench.http import KeepAliveConnection
from cascade.cli.embedded import EmbeddedSite, password_auth

PASSWORD = "crash-test-site-pw"
MIB = 1 << 20


class Client:
    def __init__(self, site: EmbeddedSite) -> None:
        self.http = KeepAliveConnection(site.port)
        reply = self.http.json(
            "POST",
            "/identity/v3/auth/tokens",
            body=password_auth("admin", PASSWORD, "admin"),
            expect=201,
        )
        self.token = reply.headers["x-subject-token"]

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        reply = self.http.json(method, path, self.token, body, expect)
        return reply.json() if reply.body else None

    def wait(self, path: str, key: str, wanted: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found: dict[str, Any] = self.call("GET", path)[key]
            if found["status"] == wanted:
                return found
            assert found["status"] != "error", found
            assert time.monotonic() < deadline, found
            time.sleep(0.05)


def test_sigkill_mid_backup_leaves_everything_consistent(tmp_path: Path) -> None:
    site = EmbeddedSite(
        "site-a",
        tmp_path / "site-a",
        PASSWORD,
        args=["--build-seconds", "0"],
        env={"CASCADE_PASSWORD_HASH_ROUNDS": "4"},
    )
    site.start()
    try:
        client = Client(site)
        volume = client.call("POST", "/volume/v3/volumes", {"volume": {"size": 1}}, 202)["volume"]
        client.wait(f"/volume/v3/volumes/{volume['id']}", "volume", "available")
        for offset in range(0, 768 * MIB, 16 * MIB):
            reply = client.http.request(
                "PUT",
                f"/sim/v1/volumes/{volume['id']}/data?offset={offset}",
                {"X-Auth-Token": client.token},
                os.urandom(16 * MIB),
            )
            assert reply.status < 300, reply.body
        before = client.call("GET", f"/sim/v1/volumes/{volume['id']}/checksum")
        backup = client.call(
            "POST", "/volume/v3/backups", {"backup": {"volume_id": volume["id"]}}, 202
        )["backup"]
        while True:  # kill once the backup is really under way
            state = client.call("GET", f"/volume/v3/backups/{backup['id']}")["backup"]
            if state["status"] != "creating" or state.get("progress", "0%") != "0%":
                break
            time.sleep(0.01)
        site.kill()
        site.start()
        client = Client(site)
        after = client.call("GET", f"/volume/v3/backups/{backup['id']}")["backup"]
        assert after["status"] in ("error", "available"), after
        assert state["status"] == "creating", "the backup finished before the kill"
        assert after["status"] == "error"
        assert after["fail_reason"]
        shown = client.call("GET", f"/volume/v3/volumes/{volume['id']}")["volume"]
        assert shown["status"] == "available"
        assert client.call("GET", f"/sim/v1/volumes/{volume['id']}/checksum") == before
        retry = client.call(
            "POST", "/volume/v3/backups", {"backup": {"volume_id": volume["id"]}}, 202
        )["backup"]
        client.wait(f"/volume/v3/backups/{retry['id']}", "backup", "available")
        restored = client.call(
            "POST", f"/volume/v3/backups/{retry['id']}/restore", {"restore": {}}, 202
        )["restore"]
        client.wait(f"/volume/v3/volumes/{restored['volume_id']}", "volume", "available")
        assert client.call("GET", f"/sim/v1/volumes/{restored['volume_id']}/checksum") == before
    finally:
        site.stop()
