"""Three sites validate tokens without pause while the master rotates its keys five times and
one site is cut off: the connected sites never refuse a valid token, and the cut-off site
catches up by itself (keys and rows) when its link returns."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from socket import gethostname

import httpx
import pytest

from cascade.cli.embedded import EmbeddedCascade, EmbeddedReplica
from cascade.config import load_settings
from cascade.identity.rotation import RotationReport
from cascade.services import Services
from tests.identity.link import Link
from tests.identity.test_partition import identity_rows
from tests.identity.test_replica_process import PASSWORD, login, until, validates

ENV = {"CASCADE_PASSWORD_HASH_ROUNDS": "4"}


def rotate_keys(master: EmbeddedCascade, timeout: float, force: bool = False) -> RotationReport:
    """What `cascade identity rotate-keys` does (tests/identity/test_rotation.py runs the
    command itself), in this process: five command start-ups would cost seconds."""
    settings = load_settings(data_dir=master.data_dir, identity_max_active_keys=8)
    services = Services(settings)
    try:
        return services.key_rotation().rotate(timeout, force=force)
    finally:
        services.close()


@dataclass
class Validator:
    """Validates every token of ``tokens`` at one site, over and over, until stopped."""

    url: str
    admin: str
    tokens: list[str]
    refused: list[str] = field(default_factory=list)
    checked: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while not self.stop.is_set():
                for token in list(self.tokens):
                    headers = {"X-Auth-Token": self.admin, "X-Subject-Token": token}
                    answer = http.get("/identity/v3/auth/tokens", headers=headers)
                    self.checked += 1
                    if answer.status_code != 200:
                        self.refused.append(f"{answer.status_code} {answer.text[:200]}")


@pytest.mark.timeout(240)
def test_five_rotations_and_a_partition_never_refuse_a_valid_token(tmp_path: Path) -> None:
    with (
        EmbeddedCascade(tmp_path / "master", PASSWORD, env=ENV) as master,
        Link(master.port) as link,
        EmbeddedReplica(tmp_path / "site-a", master.url, PASSWORD) as site_a,
        EmbeddedReplica(tmp_path / "site-b", master.url, PASSWORD) as site_b,
        EmbeddedReplica(tmp_path / "site-c", link.url, PASSWORD) as site_c,
    ):
        admin = login(master.url, "admin", PASSWORD)
        for site in (site_a, site_b, site_c):
            until(lambda site=site: validates(site.url, admin, admin), timeout=30)
        tokens = [admin]
        validators = [Validator(site.url, admin, tokens) for site in (site_a, site_b)]
        threads = [threading.Thread(target=v.run, daemon=True) for v in validators]
        for thread in threads:
            thread.start()
        try:
            first = rotate_keys(master, timeout=30)
            assert first.promoted, first
            assert not first.forced
            tokens += [login(master.url, "admin", PASSWORD), login(site_a.url, "admin", PASSWORD)]

            link.cut()  # site-c is cut off for the next two rotations
            for _ in range(2):
                # long enough for the two reachable sites to confirm on a loaded machine (3 s
                # was not, once in a parallel run); site-c never does: each waits it out
                forced = rotate_keys(master, timeout=10, force=True)
                assert forced.forced
                assert [site.name for site in forced.missing] == [f"{gethostname()}:{site_c.port}"]
                tokens.append(login(master.url, "admin", PASSWORD))
            assert validates(site_c.url, admin, admin)  # cut off, still validating
            newest = tokens[-1]  # encrypted with a key site-c has not received

            link.restore()  # site-c catches up by itself
            until(lambda: validates(site_c.url, admin, newest), timeout=20)
            for _ in range(2):
                normal = rotate_keys(master, timeout=30)
                assert normal.promoted, normal
                assert not normal.forced
                tokens.append(login(master.url, "admin", PASSWORD))
            time.sleep(1.0)  # the validators go round the newest tokens too
        finally:
            for validator in validators:
                validator.stop.set()
            for thread in threads:
                thread.join(timeout=15)

        for validator in validators:
            assert validator.refused == [], validator.url
            assert validator.checked > 100
        for token in tokens:
            for site in (site_a, site_b, site_c):
                assert validates(site.url, admin, token)
        until(lambda: identity_rows(site_c.data_dir) == identity_rows(master.data_dir), 10)
