"""Trusts (OS-TRUST) as Keystone has them: a trustor delegates roles on its project to a
trustee, who gets trust-scoped tokens (Keystone's payload both ways with Keystone 30's
formatter, validated at a replica too) holding those roles only, as long as the trust stands
and the trustor holds them; who may see and manage trusts; uses, expiry and redelegation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cascade.api.app import create_app
from cascade.identity.delegations import delegations
from cascade.identity.token_format import format_time, new_audit_id
from cascade.identity.tokens import TokenError
from cascade.services import Services, initialize
from tests.conftest import ADMIN_PASSWORD, Tenant, login, make_settings, make_tenant
from tests.identity.test_app_credentials import role_id, validate
from tests.identity.test_keystone_interop import CONF, Keystone, _keystone_read, keystone, ks
from tests.identity.test_replication import follower_of, replica

__all__ = ["keystone", "replica"]  # fixtures, used by name below

V3 = "/identity/v3"
TRUSTS = f"{V3}/OS-TRUST/trusts"


def trust_body(trustor: Tenant, trustee: Tenant, **fields: Any) -> dict[str, Any]:
    trust = {
        "trustor_user_id": trustor.user_id,
        "trustee_user_id": trustee.user_id,
        "project_id": trustor.project_id,
        "impersonation": True,
        "roles": [{"name": "member"}],
        **fields,
    }
    return {"trust": trust}


def trust_login(client: TestClient, trustee: Tenant, trust_id: str) -> Any:
    """The trustee's password login, scoped to the trust."""
    user = {"name": f"{trustee.name}-member", "domain": {"id": "default"}}
    user["password"] = "pw-" + trustee.name
    identity = {"methods": ["password"], "password": {"user": user}}
    scope = {"OS-TRUST:trust": {"id": trust_id}}
    return client.post(f"{V3}/auth/tokens", json={"auth": {"identity": identity, "scope": scope}})


@pytest.fixture
def trio(client: TestClient, admin_token: str) -> tuple[Tenant, Tenant, Tenant]:
    """A trustor, a trustee and a stranger, each a member of a project of its own."""
    return (
        make_tenant(client, admin_token),
        make_tenant(client, admin_token),
        make_tenant(client, admin_token),
    )


def test_every_route_needs_a_token(client: TestClient) -> None:
    for method, path in (
        ("POST", TRUSTS),
        ("GET", TRUSTS),
        ("GET", f"{TRUSTS}/x"),
        ("DELETE", f"{TRUSTS}/x"),
        ("GET", f"{TRUSTS}/x/roles"),
        ("GET", f"{TRUSTS}/x/roles/y"),
        ("HEAD", f"{TRUSTS}/x/roles/y"),
    ):
        assert client.request(method, path).status_code == 401, (method, path)


def test_create_show_list_and_who_sees_it(
    client: TestClient, admin_token: str, trio: tuple[Tenant, Tenant, Tenant]
) -> None:
    trustor, trustee, stranger = trio
    expires = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0, tzinfo=None)
    made = client.post(
        TRUSTS,
        json=trust_body(trustor, trustee, expires_at=expires.isoformat() + "Z"),
        headers=trustor.headers,
    )
    assert made.status_code == 201, made.text
    trust = made.json()["trust"]
    assert trust["expires_at"] == expires.isoformat() + ".000000Z"
    assert (trust["impersonation"], trust["allow_redelegation"], trust["remaining_uses"]) == (
        True,
        False,
        None,
    )
    assert [r["name"] for r in trust["roles"]] == ["member"]
    assert "v3/OS-TRUST/trusts" in trust["links"]["self"]
    one = f"{TRUSTS}/{trust['id']}"
    for reader in (trustor, trustee):
        assert client.get(one, headers=reader.headers).status_code == 200
        assert client.get(f"{one}/roles", headers=reader.headers).json()["roles"][0]["name"] == (
            "member"
        )
    member = role_id(client, admin_token, "member")
    reader_role = role_id(client, admin_token, "reader")
    assert client.head(f"{one}/roles/{member}", headers=trustor.headers).status_code == 200
    assert client.head(f"{one}/roles/{reader_role}", headers=trustor.headers).status_code == 404
    assert client.get(f"{one}/roles/{reader_role}", headers=trustor.headers).status_code == 404

    # A stranger sees nothing of it; listing is for the user named, or an admin.
    assert client.get(one, headers=stranger.headers).status_code == 403
    assert client.get(f"{one}/roles", headers=stranger.headers).status_code == 403
    assert client.delete(one, headers=stranger.headers).status_code == 403
    assert client.get(TRUSTS, headers=stranger.headers).status_code == 403
    mine = {"trustor_user_id": trustor.user_id}
    assert client.get(TRUSTS, params=mine, headers=stranger.headers).status_code == 403
    listed = client.get(TRUSTS, params=mine, headers=trustor.headers).json()["trusts"]
    assert [t["id"] for t in listed] == [trust["id"]]
    assert "roles" not in listed[0]
    theirs = {"trustee_user_id": trustee.user_id}
    assert len(client.get(TRUSTS, params=theirs, headers=trustee.headers).json()["trusts"]) == 1
    everything = client.get(TRUSTS, headers={"X-Auth-Token": admin_token}).json()["trusts"]
    assert trust["id"] in [t["id"] for t in everything]

    assert client.delete(one, headers=trustor.headers).status_code == 204
    assert client.get(one, headers=trustor.headers).status_code == 404


def test_creation_is_checked_as_keystone_checks_it(
    client: TestClient, trio: tuple[Tenant, Tenant, Tenant]
) -> None:
    trustor, trustee, stranger = trio

    def post(body: dict[str, Any], as_: Tenant = trustor) -> int:
        return client.post(TRUSTS, json=body, headers=as_.headers).status_code

    assert post(trust_body(trustor, trustee), as_=stranger) == 403  # not the trustor
    assert post(trust_body(trustor, trustee, roles=[{"name": "admin"}])) == 404  # not held
    assert post(trust_body(trustor, trustee, roles=[])) == 403  # a project needs a role
    assert post(trust_body(trustor, trustee, expires_at="bad.123Z")) == 400
    assert post(trust_body(trustor, trustee, expires_at="2001-01-01T00:00:00Z")) == 400
    assert post(trust_body(trustor, trustee, remaining_uses=0)) == 400
    assert post(trust_body(trustor, trustee, trustee_user_id=uuid.uuid4().hex)) == 404
    assert post(trust_body(trustor, trustee, allow_redelegation=True, remaining_uses=2)) == 400
    assert post(trust_body(trustor, trustee, roles=[{"id": "x", "name": "member"}])) == 400


def test_the_trustee_gets_a_trust_scoped_token_with_the_trusts_roles(
    client: TestClient, admin_token: str, trio: tuple[Tenant, Tenant, Tenant]
) -> None:
    trustor, trustee, stranger = trio
    trust = client.post(
        TRUSTS,
        json=trust_body(trustor, trustee, roles=[{"name": "reader"}]),
        headers=trustor.headers,
    ).json()["trust"]
    issued = trust_login(client, trustee, trust["id"])
    assert issued.status_code == 201, issued.text
    body = issued.json()["token"]
    assert body["OS-TRUST:trust"] == {
        "id": trust["id"],
        "trustor_user": {"id": trustor.user_id},
        "trustee_user": {"id": trustee.user_id},
        "impersonation": True,
    }
    assert body["user"]["id"] == trustor.user_id  # impersonation: the trustor is shown
    assert body["project"]["id"] == trustor.project_id
    assert [r["name"] for r in body["roles"]] == ["reader"]
    token = issued.headers["X-Subject-Token"]
    assert (
        validate(client, admin_token, token).json()["token"]["OS-TRUST:trust"]["id"]
        == (trust["id"])
    )
    headers = {"X-Auth-Token": token}
    # Reading its project works; the trust gives no member's writes.
    assert client.get(f"{V3}/projects/{trustor.project_id}", headers=headers).status_code == 200
    rescoped = {"methods": ["token"], "token": {"id": token}}
    answer = client.post(f"{V3}/auth/tokens", json={"auth": {"identity": rescoped}})
    assert answer.status_code == 403, answer.text
    assert (
        client.get(
            f"{V3}/users/{trustee.user_id}/application_credentials", headers=headers
        ).status_code
        == 403
    )

    assert trust_login(client, stranger, trust["id"]).status_code == 403  # not the trustee
    assert trust_login(client, trustee, "no-such-trust").status_code == 404

    # The trustor losing the role voids the trust's tokens.
    reader = role_id(client, admin_token, "reader")
    member = role_id(client, admin_token, "member")
    admin = {"X-Auth-Token": admin_token}
    grant = f"{V3}/projects/{trustor.project_id}/users/{trustor.user_id}/roles"
    assert client.delete(f"{grant}/{member}", headers=admin).status_code == 204
    assert validate(client, admin_token, token).status_code == 404
    assert trust_login(client, trustee, trust["id"]).status_code == 403
    assert client.put(f"{grant}/{reader}", headers=admin).status_code == 204
    again = trust_login(client, trustee, trust["id"])
    assert again.status_code == 201
    assert client.delete(f"{TRUSTS}/{trust['id']}", headers=trustor.headers).status_code == 204
    assert validate(client, admin_token, again.headers["X-Subject-Token"]).status_code == 404


def test_remaining_uses_and_no_impersonation(
    client: TestClient, trio: tuple[Tenant, Tenant, Tenant]
) -> None:
    trustor, trustee, _ = trio
    body = trust_body(trustor, trustee, impersonation=False, remaining_uses=1)
    trust = client.post(TRUSTS, json=body, headers=trustor.headers).json()["trust"]
    first = trust_login(client, trustee, trust["id"])
    assert first.status_code == 201, first.text
    assert first.json()["token"]["user"]["id"] == trustee.user_id
    assert trust_login(client, trustee, trust["id"]).status_code == 404  # used up
    assert client.get(f"{TRUSTS}/{trust['id']}", headers=trustor.headers).status_code == 404


def test_redelegation_only_when_allowed_and_never_wider(
    client: TestClient, admin_token: str, trio: tuple[Tenant, Tenant, Tenant]
) -> None:
    trustor, trustee, third = trio
    closed = client.post(TRUSTS, json=trust_body(trustor, trustee), headers=trustor.headers)
    opened = client.post(
        TRUSTS, json=trust_body(trustor, trustee, allow_redelegation=True), headers=trustor.headers
    )
    assert opened.json()["trust"]["redelegation_count"] == 3
    onward = trust_body(trustee, third, project_id=trustor.project_id, allow_redelegation=True)
    for source, expected in ((closed, 403), (opened, 201)):
        token = trust_login(client, trustee, source.json()["trust"]["id"])
        headers = {"X-Auth-Token": token.headers["X-Subject-Token"]}
        made = client.post(TRUSTS, json=onward, headers=headers)
        assert made.status_code == expected, made.text
    chained = made.json()["trust"]
    assert chained["redelegated_trust_id"] == opened.json()["trust"]["id"]
    assert chained["redelegation_count"] == 2  # one step shorter than its origin
    last = trust_body(trustee, third, project_id=trustor.project_id)  # not redelegatable
    ended = client.post(TRUSTS, json=last, headers=headers).json()["trust"]
    assert (ended["redelegation_count"], ended["allow_redelegation"]) == (0, False)
    deeper = trust_body(
        trustee, third, project_id=trustor.project_id, allow_redelegation=True, redelegation_count=1
    )
    assert client.post(TRUSTS, json=deeper, headers=headers).status_code == 403
    wider = trust_body(trustee, third, project_id=trustor.project_id, roles=[{"name": "admin"}])
    assert client.post(TRUSTS, json=wider, headers=headers).status_code == 404
    # Deleting the origin takes the chain along.
    origin = f"{TRUSTS}/{opened.json()['trust']['id']}"
    assert client.delete(origin, headers=trustor.headers).status_code == 204
    assert (
        client.get(f"{TRUSTS}/{chained['id']}", headers={"X-Auth-Token": admin_token}).status_code
        == 404
    )


def test_keystone_and_cascade_read_each_others_trust_tokens(
    client: TestClient,
    admin_token: str,
    services: Services,
    keystone: Keystone,
    trio: tuple[Tenant, Tenant, Tenant],
) -> None:
    CONF.set_override("key_repository", str(services.keys.path), group="fernet_tokens")
    trustor, trustee, _ = trio
    trust = client.post(TRUSTS, json=trust_body(trustor, trustee), headers=trustor.headers)
    trust_id = trust.json()["trust"]["id"]
    issued = trust_login(client, trustee, trust_id)
    seen = _keystone_read(keystone, issued.headers["X-Subject-Token"])
    assert (seen["trust_id"], seen["user_id"], seen["project_id"]) == (
        trust_id,
        trustee.user_id,
        trustor.project_id,
    )
    assert seen["methods"] == ["password"]
    assert seen["expires_at"] == issued.json()["token"]["expires_at"]

    minted = keystone.formatter.create_token(
        trustee.user_id,
        format_time(datetime.now(UTC) + timedelta(hours=1)),
        [new_audit_id()],
        ks.TrustScopedPayload,
        methods=["password"],
        project_id=trustor.project_id,
        trust_id=trust_id,
    )
    checked = validate(client, admin_token, minted)
    assert checked.status_code == 200, checked.text
    assert checked.json()["token"]["OS-TRUST:trust"]["id"] == trust_id


def test_a_replica_validates_trust_tokens_and_follows_the_trusts_deletion(
    client: TestClient, replica: Services, trio: tuple[Tenant, Tenant, Tenant]
) -> None:
    follower = follower_of(client, replica)
    trustor, trustee, _ = trio
    trust = client.post(TRUSTS, json=trust_body(trustor, trustee), headers=trustor.headers)
    trust_id = trust.json()["trust"]["id"]
    token = trust_login(client, trustee, trust_id).headers["X-Subject-Token"]
    follower.sync()
    seen = replica.check_token(token)
    assert seen.trust is not None
    assert seen.trust.id == trust_id
    assert [r.name for r in seen.roles] == ["member", "reader"]
    assert client.delete(f"{TRUSTS}/{trust_id}", headers=trustor.headers).status_code == 204
    assert follower.sync() > 0
    with pytest.raises(TokenError, match="trust"):
        replica.check_token(token)


@pytest.mark.postgres
def test_on_postgres_uses_count_down_and_rows_go_with_their_user(
    tmp_path: Path, postgres_url: str
) -> None:
    services = Services(make_settings(tmp_path / "data", database_url=postgres_url))
    try:
        initialize(services, ADMIN_PASSWORD)
        with TestClient(create_app(services)) as client:
            admin_token = login(client, "admin", ADMIN_PASSWORD, "admin")
            trustor, trustee = make_tenant(client, admin_token), make_tenant(client, admin_token)
            body = trust_body(trustor, trustee, remaining_uses=2)
            trust = client.post(TRUSTS, json=body, headers=trustor.headers).json()["trust"]
            assert [trust_login(client, trustee, trust["id"]).status_code for _ in range(3)] == [
                201,
                201,
                404,
            ]
            made = client.post(
                f"{V3}/users/{trustor.user_id}/application_credentials",
                json={
                    "application_credential": {
                        "name": "pg",
                        "access_rules": [
                            {"service": "compute", "path": "/v2.1/servers", "method": "GET"}
                        ],
                    }
                },
                headers=trustor.headers,
            )
            assert made.status_code == 201, made.text
            admin = {"X-Auth-Token": admin_token}
            assert client.delete(f"{V3}/users/{trustor.user_id}", headers=admin).status_code == 204
        found = delegations(services.db, services.snapshot())
        assert (found.trusts, found.app_creds, found.access_rules) == ({}, {}, {})
    finally:
        services.close()
