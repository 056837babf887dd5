"""Key rotation across sites: the next key set is staged, reaches every replica sealed for it,
and is promoted only once every replica has proven it holds it (a claim without the proof,
from an admin token or a lying replica, counts for nothing); a missing site blocks promotion
(or is named with what it will refuse when forced); no valid token is ever refused."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cascade.config import Settings
from cascade.errors import Conflict
from cascade.identity.follower import Follower, Master
from cascade.identity.keys import key_set_id
from cascade.identity.possession import CHALLENGE_TTL_S, Challenges, prove, proves
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


# --- proof of possession: only a replica that holds the staged set counts ------------------


def changes_as(client: TestClient, admin_token: str, **params: object) -> dict[str, Any]:
    """A poll of the change log made with an admin token, as anyone holding one can."""
    answer = client.get(
        "/identity-replica/v1/changes",
        params={"after": 0, "limit": 1, **params},
        headers={"X-Auth-Token": admin_token},
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def proven_key_set(client: TestClient, admin_token: str, name: str) -> str | None:
    listed = client.get("/identity-replica/v1/replicas", headers={"X-Auth-Token": admin_token})
    return next(r["key_set"] for r in listed.json()["replicas"] if r["name"] == name)


def test_an_admin_token_claiming_a_site_holds_the_staged_keys_does_not_promote(
    client: TestClient, admin_token: str, services: Services, sites: dict
) -> None:
    staged = rotate(services)
    _, follower_a = sites["site-a"]
    follower_a.sync()
    follower_a.sync()  # site-a really holds the staged set, and proves it
    held_by_b = proven_key_set(client, admin_token, "site-b")
    assert held_by_b != staged.target

    # Every claim an admin token can make for site-b without the staged keys.
    challenge = changes_as(client, admin_token, replica="site-b")["challenge"]
    assert challenge
    not_staged = services.keys.read_all()  # the master's own (current) set
    made_up = f"{int(time.time())}.bm9uY2U.bWFj"  # a challenge this master never issued
    for claim in (
        {},  # the set id alone
        {"challenge": challenge, "proof": "0" * 64},
        {"challenge": challenge, "proof": prove(not_staged, "site-b", challenge)},
        {"challenge": challenge, "proof": prove(not_staged, "site-a", challenge)},
        # the right keys, over a challenge this master did not issue
        {"challenge": made_up, "proof": prove(services.staged_keys.read_all(), "site-b", made_up)},
    ):
        changes_as(client, admin_token, replica="site-b", keys=staged.target, **claim)
        assert proven_key_set(client, admin_token, "site-b") == held_by_b, claim
    challenge_a = changes_as(client, admin_token, replica="site-a")["challenge"]
    staged_proof = prove(services.staged_keys.read_all(), "site-b", challenge_a)
    changes_as(client, admin_token, replica="site-b", keys=staged.target,
               challenge=challenge_a, proof=staged_proof)  # fmt: skip
    assert proven_key_set(client, admin_token, "site-b") == held_by_b

    report = rotate(services)
    assert not report.promoted
    assert report.holding == ["site-a"]
    assert [site.name for site in report.missing] == ["site-b"]
    assert services.staged_keys.exists()

    _, follower_b = sites["site-b"]
    follower_b.sync()  # the real site-b fetches the staged set...
    follower_b.sync()  # ...and proves it holds it
    assert rotate(services).promoted


class Liar(Follower):
    """A replica that says it holds whatever set the master wants without installing it,
    and answers each challenge with the keys it does hold."""

    def _fetch_keys(self) -> None:
        self.claimed = self._get("/identity-replica/v1/keys", {"replica": self.name})["set"]

    def _holding(self) -> tuple[str, dict[str, str]]:
        held, proof = super()._holding()
        return getattr(self, "claimed", held), proof


def test_a_replica_that_lies_about_its_keys_is_not_counted(
    tmp_path: Path, client: TestClient, services: Services, sites: dict
) -> None:
    liar_services = make_replica(tmp_path, "site-liar")
    try:
        liar = Liar(
            liar_services.db,
            liar_services.keys,
            liar_services.node_key,
            Master(str(client.base_url), "admin", ADMIN_PASSWORD),
            "site-liar",
            link=InProcess(client),
        )
        liar.sync()
        liar.sync()
        staged = rotate(services)
        for _, follower in (*sites.values(), (None, liar)):
            follower.sync()
            follower.sync()
        assert liar.claimed == staged.target  # it did claim the staged set
        report = rotate(services)
        assert not report.promoted
        assert [site.name for site in report.missing] == ["site-liar"]
        assert report.holding == ["site-a", "site-b"]
    finally:
        liar_services.close()


def test_a_challenge_is_bound_to_its_replica_and_expires() -> None:
    challenges = Challenges(b"s" * 32)
    issued = challenges.issue("site-a", now=1_000_000)
    assert challenges.valid("site-a", issued, now=1_000_000 + 10)
    assert not challenges.valid("site-b", issued, now=1_000_000 + 10)  # another replica's
    assert not challenges.valid("site-a", issued, now=1_000_000 + CHALLENGE_TTL_S + 1)
    assert not Challenges(b"t" * 32).valid("site-a", issued, now=1_000_000)  # another master
    stamp, nonce, mac = issued.split(".")
    assert not challenges.valid("site-a", f"{int(stamp) + 1}.{nonce}.{mac}", now=1_000_000)
    keys = {0: b"A" * 43 + b"=", 1: b"B" * 43 + b"="}
    other = {0: b"A" * 43 + b"=", 1: b"C" * 43 + b"="}
    proof = prove(keys, "site-a", issued)
    assert proves(keys, "site-a", issued, proof)
    assert not proves(other, "site-a", issued, proof)  # one key differs
    assert not proves(keys, "site-b", issued, proof)


def issue(client: TestClient, auth: dict[str, Any]) -> str:
    answer = client.post("/identity/v3/auth/tokens", json={"auth": auth})
    assert answer.status_code == 201, answer.text
    return str(answer.headers["X-Subject-Token"])


def tokens_of_every_kind(client: TestClient, admin_token: str) -> dict[str, str]:
    """One token of each kind the master issues: password or token method; scoped to a
    project, to a domain, or unscoped; an admin's and a member's."""
    headers = {"X-Auth-Token": admin_token}
    tenant = make_tenant(client, admin_token)
    admin = client.get("/identity/v3/users", params={"name": "admin"}, headers=headers)
    admin_id = admin.json()["users"][0]["id"]
    role = client.get("/identity/v3/roles", params={"name": "admin"}, headers=headers)
    role_id = role.json()["roles"][0]["id"]
    on_domain = f"/identity/v3/domains/default/users/{admin_id}/roles/{role_id}"
    assert client.put(on_domain, headers=headers).status_code == 204
    member = {"name": f"{tenant.name}-member", "domain": {"id": "default"}}
    password = {"user": {**member, "password": f"pw-{tenant.name}"}}
    unscoped = issue(client, {"identity": {"methods": ["password"], "password": password}})
    admin_password = {"user": {"name": "admin", "domain": {"id": "default"},
                               "password": ADMIN_PASSWORD}}  # fmt: skip
    return {
        "admin, project, password": admin_token,
        "member, project, password": tenant.token,
        "member, unscoped, password": unscoped,
        "member, project, token": issue(
            client,
            {
                "identity": {"methods": ["token"], "token": {"id": unscoped}},
                "scope": {"project": {"id": tenant.project_id}},
            },
        ),
        "admin, domain, password": issue(
            client,
            {
                "identity": {"methods": ["password"], "password": admin_password},
                "scope": {"domain": {"id": "default"}},
            },
        ),
    }


def test_every_kind_of_token_issued_before_forced_rotations_stays_valid_everywhere(
    client: TestClient, admin_token: str, services: Services, sites: dict
) -> None:
    tokens = tokens_of_every_kind(client, admin_token)
    for _, follower in sites.values():
        follower.sync()  # the rows these tokens need, everywhere
    replica_a, follower_a = sites["site-a"]
    replica_b, _ = sites["site-b"]

    assert rotate(services, force=True).forced  # no site holds the new set: forced
    # Encrypted with the key just promoted, which every site held as its staged key.
    tokens["admin, project, password, between the rotations"] = login(
        client, "admin", ADMIN_PASSWORD, "admin"
    )
    second = rotate(services, force=True)  # site-b now lacks the key promoted here
    assert second.forced
    assert [site.name for site in second.missing] == ["site-a", "site-b"]
    follower_a.sync()  # site-a catches up with the current set
    follower_a.sync()

    everywhere = (("master", services), ("site-a", replica_a), ("site-b", replica_b))
    for kind, token in tokens.items():
        for where, identity in everywhere:
            try:
                identity.check_token(token)
            except TokenError as error:
                pytest.fail(f"{kind} token issued before a rotation refused at {where}: {error}")
    after = login(client, "admin", ADMIN_PASSWORD, "admin")
    services.check_token(after)
    replica_a.check_token(after)
    with pytest.raises(TokenError):  # as the report says: a promoted key it never received
        replica_b.check_token(after)
