"""Application credentials and access rules as Keystone has them: created by their user for
its project (secret shown once, stored hashed), the ``application_credential`` auth method
(by id, or by name and user), tokens that hold only the credential's roles and carry
Keystone's payload (Keystone 30's formatter reads them), validated at a replica too, and
what stops them: deletion, expiry, the user losing a role, the user's deletion."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cascade.db.delegation_models import ApplicationCredential
from cascade.identity.tokens import TokenError
from cascade.services import Services
from tests.conftest import Tenant, make_tenant
from tests.identity.test_keystone_interop import CONF, Keystone, _keystone_read, keystone
from tests.identity.test_replication import follower_of, replica

__all__ = ["keystone", "replica"]  # fixtures, used by name below

V3 = "/identity/v3"


def creds_url(user_id: str, suffix: str = "") -> str:
    return f"{V3}/users/{user_id}/application_credentials{suffix}"


def create(client: TestClient, tenant: Tenant, **fields: Any) -> Any:
    body = {"application_credential": {"name": f"ac-{time.monotonic_ns()}", **fields}}
    return client.post(creds_url(tenant.user_id), json=body, headers=tenant.headers)


def app_cred_login(client: TestClient, method: dict[str, Any]) -> Any:
    identity = {"methods": ["application_credential"], "application_credential": method}
    return client.post(f"{V3}/auth/tokens", json={"auth": {"identity": identity}})


def validate(client: TestClient, admin_token: str, token: str) -> Any:
    headers = {"X-Auth-Token": admin_token, "X-Subject-Token": token}
    return client.get(f"{V3}/auth/tokens", headers=headers)


def role_id(client: TestClient, token: str, name: str) -> str:
    found = client.get(f"{V3}/roles", params={"name": name}, headers={"X-Auth-Token": token})
    return str(found.json()["roles"][0]["id"])


def test_every_route_needs_a_token(client: TestClient, admin_token: str) -> None:
    tenant = make_tenant(client, admin_token)
    for method, path in (
        ("POST", creds_url(tenant.user_id)),
        ("GET", creds_url(tenant.user_id)),
        ("GET", creds_url(tenant.user_id, "/x")),
        ("DELETE", creds_url(tenant.user_id, "/x")),
        ("GET", f"{V3}/users/{tenant.user_id}/access_rules"),
        ("GET", f"{V3}/users/{tenant.user_id}/access_rules/x"),
        ("DELETE", f"{V3}/users/{tenant.user_id}/access_rules/x"),
    ):
        answer = client.request(method, path, json={"application_credential": {"name": "a"}})
        assert answer.status_code == 401, (method, path, answer.text)


def test_create_log_in_by_id_and_by_name_then_delete(
    client: TestClient, admin_token: str, services: Services
) -> None:
    tenant = make_tenant(client, admin_token)
    created = create(client, tenant, description="ci")
    assert created.status_code == 201, created.text
    app_cred = created.json()["application_credential"]
    secret = app_cred["secret"]
    assert len(secret) >= 64
    assert app_cred["project_id"] == tenant.project_id
    assert {r["name"] for r in app_cred["roles"]} == {"member", "reader"}
    assert app_cred["unrestricted"] is False
    assert app_cred["expires_at"] is None
    with services.db.session() as session:  # only a hash of the secret is kept
        stored = session.get(ApplicationCredential, app_cred["id"])
        assert stored is not None
        assert secret not in stored.secret_hash
    shown = client.get(creds_url(tenant.user_id, f"/{app_cred['id']}"), headers=tenant.headers)
    assert shown.status_code == 200, shown.text
    assert "secret" not in shown.json()["application_credential"]

    by_id = app_cred_login(client, {"id": app_cred["id"], "secret": secret})
    assert by_id.status_code == 201, by_id.text
    body = by_id.json()["token"]
    assert body["methods"] == ["application_credential"]
    assert body["project"]["id"] == tenant.project_id
    assert body["application_credential"] == {
        "id": app_cred["id"],
        "name": app_cred["name"],
        "restricted": True,
    }
    user = {"name": f"{tenant.name}-member", "domain": {"name": "Default"}}
    by_name = app_cred_login(client, {"name": app_cred["name"], "user": user, "secret": secret})
    assert by_name.status_code == 201, by_name.text
    token = by_id.headers["X-Subject-Token"]
    assert validate(client, admin_token, token).status_code == 200
    wrong = app_cred_login(client, {"id": app_cred["id"], "secret": secret + "x"})
    assert wrong.status_code == 401
    scoped = {
        "methods": ["application_credential"],
        "application_credential": {"id": app_cred["id"], "secret": secret},
    }
    asked = {"auth": {"identity": scoped, "scope": {"project": {"id": tenant.project_id}}}}
    assert client.post(f"{V3}/auth/tokens", json=asked).status_code == 401
    # A delegated token cannot be turned into another token.
    rescoped = {"methods": ["token"], "token": {"id": token}}
    answer = client.post(f"{V3}/auth/tokens", json={"auth": {"identity": rescoped}})
    assert answer.status_code == 403, answer.text

    deleted = client.delete(creds_url(tenant.user_id, f"/{app_cred['id']}"), headers=tenant.headers)
    assert deleted.status_code == 204, deleted.text
    assert validate(client, admin_token, token).status_code == 404
    assert client.get(f"{V3}/auth/projects", headers={"X-Auth-Token": token}).status_code == 401
    assert app_cred_login(client, {"id": app_cred["id"], "secret": secret}).status_code == 401


def test_roles_are_a_subset_of_the_token_and_the_token_holds_only_them(
    client: TestClient, admin_token: str
) -> None:
    tenant = make_tenant(client, admin_token)
    reader = create(client, tenant, roles=[{"name": "reader"}])
    assert reader.status_code == 201, reader.text
    app_cred = reader.json()["application_credential"]
    assert [r["name"] for r in app_cred["roles"]] == ["reader"]
    token = app_cred_login(client, {"id": app_cred["id"], "secret": app_cred["secret"]})
    assert [r["name"] for r in token.json()["token"]["roles"]] == ["reader"]

    assert create(client, tenant, roles=[{"name": "admin"}]).status_code == 400
    assert create(client, tenant, roles=[{"id": "no-such-role"}]).status_code == 404
    assert create(client, tenant, roles=[{}]).status_code == 400
    name = app_cred["name"]
    assert create(client, tenant, name=name).status_code == 409  # unique per user
    other = make_tenant(client, admin_token)
    assert create(client, other, name=name).status_code == 201


def test_tenants_are_isolated(client: TestClient, admin_token: str) -> None:
    owner = make_tenant(client, admin_token)
    other = make_tenant(client, admin_token)
    app_cred = create(client, owner).json()["application_credential"]
    mine = creds_url(owner.user_id, f"/{app_cred['id']}")
    assert client.get(creds_url(owner.user_id), headers=other.headers).status_code == 403
    assert client.get(mine, headers=other.headers).status_code == 403
    assert client.delete(mine, headers=other.headers).status_code == 403
    body = {"application_credential": {"name": "theirs"}}
    posted = client.post(creds_url(owner.user_id), json=body, headers=other.headers)
    assert posted.status_code == 403
    rules = f"{V3}/users/{owner.user_id}/access_rules"
    assert client.get(rules, headers=other.headers).status_code == 403
    # Under its own user id, the other tenant does not find the owner's credential either.
    assert (
        client.get(creds_url(other.user_id), headers=other.headers).json()[
            "application_credentials"
        ]
        == []
    )
    stranger = creds_url(other.user_id, f"/{app_cred['id']}")
    assert client.get(stranger, headers=other.headers).status_code == 404
    admin = {"X-Auth-Token": admin_token}
    listed = client.get(creds_url(owner.user_id), headers=admin).json()["application_credentials"]
    assert [c["id"] for c in listed] == [app_cred["id"]]
    assert "secret" not in listed[0]
    # An admin cannot make a credential for someone else either (Keystone's rule).
    assert client.post(creds_url(owner.user_id), json=body, headers=admin).status_code == 403


def test_a_restricted_credential_cannot_manage_credentials_or_trusts(
    client: TestClient, admin_token: str
) -> None:
    tenant = make_tenant(client, admin_token)
    restricted = create(client, tenant).json()["application_credential"]
    login = app_cred_login(client, {"id": restricted["id"], "secret": restricted["secret"]})
    headers = {"X-Auth-Token": login.headers["X-Subject-Token"]}
    body = {"application_credential": {"name": "child"}}
    assert client.post(creds_url(tenant.user_id), json=body, headers=headers).status_code == 403
    own = creds_url(tenant.user_id, f"/{restricted['id']}")
    assert client.delete(own, headers=headers).status_code == 403
    assert client.get(creds_url(tenant.user_id), headers=headers).status_code == 200
    trust = {
        "trust": {
            "trustor_user_id": tenant.user_id,
            "trustee_user_id": tenant.user_id,
            "impersonation": False,
        }
    }
    assert client.post(f"{V3}/OS-TRUST/trusts", json=trust, headers=headers).status_code == 403

    unrestricted = create(client, tenant, unrestricted=True).json()["application_credential"]
    login = app_cred_login(client, {"id": unrestricted["id"], "secret": unrestricted["secret"]})
    headers = {"X-Auth-Token": login.headers["X-Subject-Token"]}
    assert login.json()["token"]["application_credential"]["restricted"] is False
    made = client.post(creds_url(tenant.user_id), json=body, headers=headers)
    assert made.status_code == 201, made.text
    assert client.post(f"{V3}/OS-TRUST/trusts", json=trust, headers=headers).status_code == 403


def test_expiry_is_keystones_and_caps_the_token(client: TestClient, admin_token: str) -> None:
    tenant = make_tenant(client, admin_token)
    past = (datetime.now(UTC) - timedelta(minutes=1)).replace(tzinfo=None).isoformat()
    assert create(client, tenant, expires_at=past).status_code == 400
    assert create(client, tenant, expires_at="bad.123Z").status_code == 400
    later = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None)
    made = create(client, tenant, expires_at=later.isoformat()).json()["application_credential"]
    assert made["expires_at"] == later.strftime("%Y-%m-%dT%H:%M:%S.%f")  # as Tempest compares

    soon = datetime.now(UTC) + timedelta(seconds=3)
    short = create(client, tenant, expires_at=soon.isoformat()).json()["application_credential"]
    login = app_cred_login(client, {"id": short["id"], "secret": short["secret"]})
    assert login.status_code == 201, login.text
    expires = datetime.fromisoformat(login.json()["token"]["expires_at"].replace("Z", "+00:00"))
    assert expires <= soon
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and datetime.now(UTC) < soon + timedelta(seconds=1):
        time.sleep(0.2)
    again = app_cred_login(client, {"id": short["id"], "secret": short["secret"]})
    assert again.status_code == 401
    assert validate(client, admin_token, login.headers["X-Subject-Token"]).status_code == 404


def test_losing_a_role_or_the_user_stops_the_credential(
    client: TestClient, admin_token: str
) -> None:
    tenant = make_tenant(client, admin_token)
    app_cred = create(client, tenant).json()["application_credential"]
    ref = {"id": app_cred["id"], "secret": app_cred["secret"]}
    token = app_cred_login(client, ref).headers["X-Subject-Token"]
    admin = {"X-Auth-Token": admin_token}
    member = role_id(client, admin_token, "member")
    grant = f"{V3}/projects/{tenant.project_id}/users/{tenant.user_id}/roles/{member}"
    assert client.delete(grant, headers=admin).status_code == 204
    assert validate(client, admin_token, token).status_code == 404
    assert app_cred_login(client, ref).status_code == 401

    assert client.delete(f"{V3}/users/{tenant.user_id}", headers=admin).status_code == 204
    listed = client.get(creds_url(tenant.user_id), headers=admin)
    assert listed.json()["application_credentials"] == []  # gone with its user


def test_access_rules_are_the_users_and_outlive_their_credentials(
    client: TestClient, admin_token: str
) -> None:
    tenant = make_tenant(client, admin_token)
    rule = {"path": "/v2.1/servers/*/ips", "method": "GET", "service": "compute"}
    first = create(client, tenant, access_rules=[rule]).json()["application_credential"]
    shown = first["access_rules"][0]
    assert shown == {**rule, "id": shown["id"]}  # as Tempest compares it: no links
    second = create(client, tenant, access_rules=[{"id": shown["id"]}]).json()
    assert second["application_credential"]["access_rules"][0]["id"] == shown["id"]
    token = app_cred_login(client, {"id": first["id"], "secret": first["secret"]}).json()
    assert token["token"]["application_credential"]["access_rules"] == [{**rule, "id": shown["id"]}]

    rules = f"{V3}/users/{tenant.user_id}/access_rules"
    listed = client.get(rules, headers=tenant.headers).json()["access_rules"]
    assert [r["id"] for r in listed] == [shown["id"]]
    assert (
        client.get(rules, params={"service": "image"}, headers=tenant.headers).json()[
            "access_rules"
        ]
        == []
    )
    one = f"{rules}/{shown['id']}"
    assert client.get(one, headers=tenant.headers).status_code == 200
    assert client.delete(one, headers=tenant.headers).status_code == 403  # in use
    for made in (first, second["application_credential"]):
        gone = client.delete(creds_url(tenant.user_id, f"/{made['id']}"), headers=tenant.headers)
        assert gone.status_code == 204
    assert client.get(one, headers=tenant.headers).status_code == 200  # still the user's
    assert client.delete(one, headers=tenant.headers).status_code == 204
    assert client.get(one, headers=tenant.headers).status_code == 404
    bad = create(
        client, tenant, access_rules=[{"path": "no-slash", "method": "GET", "service": "compute"}]
    )
    assert bad.status_code == 400


def test_keystone_reads_the_token_cascade_issued(
    client: TestClient, admin_token: str, services: Services, keystone: Keystone
) -> None:
    CONF.set_override("key_repository", str(services.keys.path), group="fernet_tokens")
    tenant = make_tenant(client, admin_token)
    app_cred = create(client, tenant).json()["application_credential"]
    issued = app_cred_login(client, {"id": app_cred["id"], "secret": app_cred["secret"]})
    seen = _keystone_read(keystone, issued.headers["X-Subject-Token"])
    assert seen["app_cred_id"] == app_cred["id"]
    assert seen["user_id"] == tenant.user_id
    assert seen["project_id"] == tenant.project_id
    assert seen["methods"] == ["application_credential"]
    assert seen["trust_id"] is None
    assert seen["audit_ids"] == issued.json()["token"]["audit_ids"]


def test_a_replica_validates_it_and_follows_its_deletion(
    client: TestClient, admin_token: str, replica: Services
) -> None:
    follower = follower_of(client, replica)
    tenant = make_tenant(client, admin_token)
    app_cred = create(client, tenant).json()["application_credential"]
    token = app_cred_login(client, {"id": app_cred["id"], "secret": app_cred["secret"]})
    follower.sync()
    seen = replica.check_token(token.headers["X-Subject-Token"])
    assert seen.app_cred is not None
    assert seen.app_cred.id == app_cred["id"]
    assert [r.name for r in seen.roles] == ["member", "reader"]

    url = creds_url(tenant.user_id, f"/{app_cred['id']}")
    assert client.delete(url, headers=tenant.headers).status_code == 204
    assert follower.sync() > 0
    with pytest.raises(TokenError, match="application credential"):
        replica.check_token(token.headers["X-Subject-Token"])
