"""Key rotation across sites: the next key set is staged, reaches every replica sealed for it,
and is promoted only once every replica holds it; a missing site blocks promotion (or is
named with what it will refuse when forced); no valid token is ever refused."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cascade.config import Settings
from cascade.errors import Conflict
from cascade.identity.follower import Follower, Master
from cascade.identity.keys import key_set_id
from cascade.identity.rotation import RotationReport
from cascade.identity.sealing import NodeKey, SealError
from cascade.identity.tokens import TokenError
from cascade.services import Services, initialize
from tests.cli.test_cli import cascade
from tests.conftest import ADMIN_PASSWORD, login, make_settings, make_tenant
from tests.identity.in_process import InProcess


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "master", identity_max_active_keys=6)


def make_replica(tmp_path: Path, name: str) -> Services:
    services = Services(make_settings(tmp_path / name))
    initialize(services, None)
    return services


@pytest.fixture
def sites(tmp_path: Path, client: TestClient) -> Iterator[dict[str, tuple[Services, Follower]]]:
    found = {}
    for name in ("site-a", "site-b"):
        replica = make_replica(tmp_path, name)
        follower = Follower(
            replica.db,
            replica.keys,
            replica.node_key,
            Master(str(client.base_url), "admin", ADMIN_PASSWORD),
            name,
            on_keys=replica.tokens.reload_keys,
            link=InProcess(client),
        )
        follower.sync()  # bootstrap
        follower.sync()  # first poll: the master learns which key set it holds
        found[name] = (replica, follower)
    yield found
    for replica, _ in found.values():
        replica.close()


def rotate(services: Services, force: bool = False) -> RotationReport:
    report = services.key_rotation().rotate(timeout=0, force=force)
    if report.promoted:
        services.tokens.reload_keys()  # the API process would within a second
    return report


def test_promotion_waits_until_every_site_holds_the_new_keys(
    client: TestClient, admin_token: str, services: Services, sites: dict
) -> None:
    tenant = make_tenant(client, admin_token)
    before = services.keys.read_all()

    staged = rotate(services)
    assert not staged.promoted
    assert staged.sites == 2
    assert services.keys.read_all() == before  # the master still encrypts with its primary
    assert [site.name for site in staged.missing] == ["site-a", "site-b"]

    for _, follower in sites.values():
        follower.sync()  # learns of the new set, fetches it sealed, installs it
        follower.sync()  # reports holding it
    done = rotate(services)  # resumes the staged rotation
    assert done.promoted
    assert not done.forced
    assert done.holding == ["site-a", "site-b"]
    assert done.target == staged.target == key_set_id(services.keys.read_all())
    assert max(services.keys.read_all()) == max(before) + 1
    assert not services.staged_keys.path.exists()

    fresh = make_tenant(client, admin_token)  # issued with the newly promoted key
    for replica, follower in sites.values():
        follower.sync()  # the new tenant's rows
        replica.check_token(tenant.token)  # issued before the rotation: still valid
        replica.check_token(fresh.token)
        assert key_set_id(replica.keys.read_all()) == done.target


def test_keys_reach_a_site_as_0600_files_and_never_in_clear(
    client: TestClient, admin_token: str, services: Services, sites: dict
) -> None:
    replica, _ = sites["site-a"]
    for path in replica.keys.path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(replica.keys.path.stat().st_mode) == 0o700
    headers = {"X-Auth-Token": admin_token}
    answer = client.get("/identity-replica/v1/keys?replica=site-a", headers=headers).text
    for key in services.keys.read_all().values():
        assert key.decode() not in answer
    assert answer.count("bundle") == 1


def test_a_key_package_opens_only_at_the_site_it_was_sealed_for(tmp_path: Path) -> None:
    master, site, other = (NodeKey(tmp_path / n) for n in ("master", "site", "other"))
    keys = {0: b"A" * 43 + b"=", 1: b"B" * 43 + b"="}
    bundle = master.seal(site.public, keys)
    assert site.unseal(master.public, bundle) == keys
    with pytest.raises(SealError):
        other.unseal(master.public, bundle)  # not its package
    with pytest.raises(SealError):
        site.unseal(other.public, bundle)  # not from the master it follows
    with pytest.raises(SealError):
        site.unseal(master.public, bundle[:-6] + "AAAAAA")  # tampered with
    assert stat.S_IMODE((tmp_path / "site").stat().st_mode) == 0o600
    assert NodeKey(tmp_path / "site").public == site.public  # kept across restarts


def test_an_unreachable_site_blocks_promotion_and_is_named(
    client: TestClient, admin_token: str, services: Services, sites: dict
) -> None:
    rotate(services)  # staged
    _, follower_a = sites["site-a"]
    follower_a.sync()
    follower_a.sync()
    report = rotate(services)  # site-b never polls again
    assert not report.promoted
    assert [site.name for site in report.missing] == ["site-b"]
    assert report.missing[0].refuses.startswith("nothing")  # it holds the staged key already
    result = cascade("identity", "rotate-keys", "--timeout", "0", "--json",
                     "--data-dir", str(services.settings.data_dir))  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "site-b" in result.stdout
    assert "not promoted" in result.stdout
    assert json.loads(result.stdout.splitlines()[-1])["missing"][0]["name"] == "site-b"


def test_forced_promotion_says_which_tokens_a_lagging_site_refuses_until_it_catches_up(
    client: TestClient, admin_token: str, services: Services, sites: dict
) -> None:
    replica_b, follower_b = sites["site-b"]
    first = rotate(services, force=True)
    assert first.promoted
    assert first.forced
    second = rotate(services, force=True)  # site-b now lacks the promoted key
    assert second.promoted
    assert [site.name for site in second.missing] == ["site-a", "site-b"]
    refuses = second.missing[1].refuses
    assert refuses.startswith(f"every token encrypted with key {second.primary}")

    fresh = login(client, "admin", ADMIN_PASSWORD, "admin")  # a user site-b knows
    with pytest.raises(TokenError, match=r"decrypt|not a Fernet|invalid"):
        replica_b.check_token(fresh)  # exactly as reported: its key is unknown there
    follower_b.sync()  # catches up: fetches the current set
    replica_b.check_token(fresh)


def test_a_rotation_that_would_drop_a_key_with_live_tokens_is_refused(
    tmp_path: Path, services: Services
) -> None:
    rotation = Services(make_settings(tmp_path / "master", identity_max_active_keys=3))
    try:
        rotation.key_rotation().rotate(timeout=0)  # no site registered: promoted at once
        with pytest.raises(Conflict, match="would drop key 1"):
            rotation.key_rotation().rotate(timeout=0)
    finally:
        rotation.close()


def test_status_shows_which_sites_hold_the_current_keys(
    client: TestClient, services: Services, sites: dict
) -> None:
    rotate(services)
    _, follower_a = sites["site-a"]
    follower_a.sync()
    follower_a.sync()
    result = cascade("identity", "status", "--json", "--data-dir", str(services.settings.data_dir))
    assert result.returncode == 0, result.stderr
    assert "not current" in result.stdout
    forgot = cascade("identity", "forget-replica", "site-b",
                     "--data-dir", str(services.settings.data_dir))  # fmt: skip
    assert forgot.returncode == 0, forgot.stderr
    assert rotate(services).promoted  # nobody left who lacks the set
