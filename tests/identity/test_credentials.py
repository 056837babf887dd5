"""Credentials (``/v3/credentials``) and EC2 keys (``/v3/users/{id}/credentials/OS-EC2``) as
Keystone has them: a user's own to manage, nobody else's to see, blobs encrypted at rest with
a key repository of their own, and the encrypted rows followed by replicas."""

from __future__ import annotations

import hashlib
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from cascade.errors import Unavailable
from cascade.identity.keys import KeyRepository
from cascade.services import Services
from tests.conftest import make_tenant
from tests.identity.test_replication import follower_of, replica, tables

__all__ = ["replica"]  # the fixture, used by name below

V3 = "/identity/v3"
BLOB = json.dumps({"access": "the-access", "secret": "the-secret"})


def test_credential_routes_need_a_token(client: TestClient, admin_token: str) -> None:
    tenant = make_tenant(client, admin_token)
    ec2 = f"{V3}/users/{tenant.user_id}/credentials/OS-EC2"
    for method, path in (
        ("GET", f"{V3}/credentials"),
        ("POST", f"{V3}/credentials"),
        ("GET", f"{V3}/credentials/x"),
        ("PATCH", f"{V3}/credentials/x"),
        ("DELETE", f"{V3}/credentials/x"),
        ("GET", ec2),
        ("POST", ec2),
        ("GET", f"{ec2}/x"),
        ("DELETE", f"{ec2}/x"),
    ):
        assert client.request(method, path).status_code == 401, (method, path)


def test_credentials_are_their_users_own_and_encrypted_at_rest(
    client: TestClient, admin_token: str, services: Services
) -> None:
    admin = {"X-Auth-Token": admin_token}
    alice, bob = make_tenant(client, admin_token), make_tenant(client, admin_token)
    body = {"user_id": alice.user_id, "project_id": alice.project_id, "type": "totp"}
    made = client.post(
        f"{V3}/credentials",
        json={"credential": {**body, "blob": "s3cr3t-blob", "label": "phone"}},
        headers=alice.headers,
    )
    assert made.status_code == 201, made.text
    credential = made.json()["credential"]
    assert {**body, "blob": "s3cr3t-blob", "label": "phone"}.items() <= credential.items()
    assert credential["links"]["self"].endswith(f"/v3/credentials/{credential['id']}")
    one = f"{V3}/credentials/{credential['id']}"

    # At rest: neither the blob nor any part of it, and a key of the credential repository
    # (not a token key) decrypts it.
    with services.db.engine.connect() as connection:
        row = connection.execute(
            text("SELECT encrypted_blob, key_hash FROM credentials WHERE id = :id"),
            {"id": credential["id"]},
        ).one()
    assert "s3cr3t" not in row.encrypted_blob
    credential_keys = KeyRepository(services.settings.data_dir / "credential-keys")
    assert set(credential_keys.keys()).isdisjoint(services.keys.keys())
    assert services.user_credentials.cipher.decrypt(row.encrypted_blob) == "s3cr3t-blob"

    # Bob sees none of Alice's, may not make one for her, nor read, change or delete hers.
    assert client.get(f"{V3}/credentials", headers=bob.headers).json()["credentials"] == []
    theirs = client.get(f"{V3}/credentials", params={"user_id": alice.user_id}, headers=bob.headers)
    assert theirs.json()["credentials"] == []
    for_her = client.post(
        f"{V3}/credentials", json={"credential": {**body, "blob": "x"}}, headers=bob.headers
    )
    assert for_her.status_code == 403
    assert client.get(one, headers=bob.headers).status_code == 403
    patch = {"credential": {"blob": "stolen"}}
    assert client.patch(one, json=patch, headers=bob.headers).status_code == 403
    assert client.delete(one, headers=bob.headers).status_code == 403
    mine = client.get(f"{V3}/credentials", headers=alice.headers).json()["credentials"]
    assert [c["id"] for c in mine] == [credential["id"]]
    # The admin sees every one, filtered by user and type.
    typed = {"user_id": alice.user_id, "type": "totp"}
    listed = client.get(f"{V3}/credentials", params=typed, headers=admin).json()["credentials"]
    assert [c["id"] for c in listed] == [credential["id"]]
    assert (
        client.get(f"{V3}/credentials", params={"type": "ec2"}, headers=admin).json()["credentials"]
        == []
    )

    changed = client.patch(one, json={"credential": {"blob": "new-blob"}}, headers=alice.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["credential"]["blob"] == "new-blob"
    assert changed.json()["credential"]["label"] == "phone"
    assert client.get(one, headers=alice.headers).json()["credential"]["blob"] == "new-blob"
    assert client.delete(one, headers=alice.headers).status_code == 204
    assert client.get(one, headers=admin).status_code == 404


def test_ec2_credentials_are_keystones_ec2_type(client: TestClient, admin_token: str) -> None:
    admin = {"X-Auth-Token": admin_token}
    alice, bob = make_tenant(client, admin_token), make_tenant(client, admin_token)
    ec2 = f"{V3}/users/{alice.user_id}/credentials/OS-EC2"
    made = client.post(ec2, json={"tenant_id": alice.project_id}, headers=alice.headers)
    assert made.status_code == 201, made.text
    keys = made.json()["credential"]
    assert (keys["user_id"], keys["tenant_id"]) == (alice.user_id, alice.project_id)
    assert len(keys["access"]) == len(keys["secret"]) == 32
    assert keys["links"]["self"].endswith(f"{ec2}/{keys['access']}".removeprefix("/identity"))
    shown = client.get(f"{ec2}/{keys['access']}", headers=alice.headers).json()["credential"]
    assert shown == keys
    listed = client.get(ec2, headers=alice.headers).json()["credentials"]
    assert [c["access"] for c in listed] == [keys["access"]]
    # The same keys as a v3 credential of type ec2, its id the SHA-256 of the access key.
    as_v3 = client.get(f"{V3}/credentials", params={"type": "ec2"}, headers=admin).json()
    (credential,) = as_v3["credentials"]
    assert credential["id"] == hashlib.sha256(keys["access"].encode()).hexdigest()
    assert json.loads(credential["blob"])["secret"] == keys["secret"]

    # Bob neither lists, shows, deletes nor makes Alice's.
    assert client.get(ec2, headers=bob.headers).status_code == 403
    assert client.get(f"{ec2}/{keys['access']}", headers=bob.headers).status_code == 403
    assert client.delete(f"{ec2}/{keys['access']}", headers=bob.headers).status_code == 403
    bobs = f"{V3}/users/{bob.user_id}/credentials/OS-EC2"
    assert client.get(f"{bobs}/{keys['access']}", headers=bob.headers).status_code == 404
    refused = client.post(ec2, json={"tenant_id": bob.project_id}, headers=bob.headers)
    assert refused.status_code == 403
    nowhere = client.post(ec2, json={"tenant_id": "nowhere"}, headers=alice.headers)
    assert nowhere.status_code == 404

    # A v3 ec2 credential needs a project and an access key, and gets Keystone's id.
    v3 = {"user_id": alice.user_id, "type": "ec2", "blob": BLOB}
    no_project = client.post(f"{V3}/credentials", json={"credential": v3}, headers=admin)
    assert no_project.status_code == 400
    bad_blob = {**v3, "project_id": alice.project_id, "blob": "not json"}
    assert (
        client.post(f"{V3}/credentials", json={"credential": bad_blob}, headers=admin).status_code
        == 400
    )
    ok = client.post(
        f"{V3}/credentials",
        json={"credential": {**v3, "project_id": alice.project_id}},
        headers=admin,
    )
    assert ok.json()["credential"]["id"] == hashlib.sha256(b"the-access").hexdigest()

    assert client.delete(f"{ec2}/{keys['access']}", headers=alice.headers).status_code == 204
    assert client.get(f"{ec2}/{keys['access']}", headers=alice.headers).status_code == 404


def test_replicas_get_the_encrypted_rows_but_no_key(
    client: TestClient, admin_token: str, services: Services, replica: Services
) -> None:
    tenant = make_tenant(client, admin_token)
    body = {"user_id": tenant.user_id, "type": "cert", "blob": "pem"}
    made = client.post(f"{V3}/credentials", json={"credential": body}, headers=tenant.headers)
    assert made.status_code == 201, made.text
    follower = follower_of(client, replica)
    assert follower.sync() > 0
    assert tables(replica)["credentials"] == tables(services)["credentials"]
    with pytest.raises(Unavailable, match="master"):  # it holds no credential key
        replica.user_credentials.get(made.json()["credential"]["id"])
    # Deleting the user takes its credentials along, at the replica too.
    deleted = client.delete(f"{V3}/users/{tenant.user_id}", headers={"X-Auth-Token": admin_token})
    assert deleted.status_code == 204
    follower.sync()
    assert tables(replica)["credentials"] == []
