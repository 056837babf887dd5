"""Keystone's domain configuration (``/identity/v3/domains/{id}/config``): the whole, a
group, an option, Keystone's defaults; who may; what is never shown (the LDAP password);
the configuration going with its domain, and replicas following it."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from cascade.services import Services
from tests.conftest import make_tenant
from tests.identity.test_replication import follower_of, replica, tables

__all__ = ["replica"]  # the fixture, used by name below

V3 = "/identity/v3"
CONFIG = {
    "identity": {"driver": "ldap"},
    "ldap": {"url": "ldap://myldap.com:389/", "user_tree_dn": "ou=Users,dc=org"},
}
SECRET = "s3cret-bind-password"


def _domain(client: TestClient, admin: dict[str, str], name: str) -> str:
    made = client.post(f"{V3}/domains", json={"domain": {"name": name}}, headers=admin)
    assert made.status_code == 201, made.text
    domain_id: str = made.json()["domain"]["id"]
    return domain_id


def _config(answer: Any) -> Any:
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["config"]


def test_domain_configuration(client: TestClient, admin_token: str) -> None:
    admin = {"X-Auth-Token": admin_token}
    tenant = make_tenant(client, admin_token)
    domain_id = _domain(client, admin, "ldap-users")
    url = f"{V3}/domains/{domain_id}/config"
    secret = {"ldap": {**CONFIG["ldap"], "password": SECRET}}
    body = {"config": {**CONFIG, **secret}}

    assert client.put(url, json=body).status_code == 401
    assert client.put(url, json=body, headers=tenant.headers).status_code == 403
    assert client.get(url, headers=tenant.headers).status_code == 403
    assert client.get(f"{V3}/domains/config/default", headers=tenant.headers).status_code == 403
    assert client.get(url, headers=admin).status_code == 404  # nothing set yet
    assert client.put(f"{V3}/domains/nowhere/config", json=body, headers=admin).status_code == 404

    created = client.put(url, json=body, headers=admin)
    assert created.status_code == 201
    assert created.json()["config"] == CONFIG  # the password is stored, not shown
    assert _config(client.get(url, headers=admin)) == CONFIG
    assert _config(client.get(f"{url}/ldap", headers=admin)) == {"ldap": CONFIG["ldap"]}
    assert _config(client.get(f"{url}/ldap/url", headers=admin)) == {"url": CONFIG["ldap"]["url"]}
    assert client.get(f"{url}/ldap/password", headers=admin).status_code == 404
    assert SECRET not in client.get(url, headers=admin).text

    # Updates: a group's options merged, one option alone; the password stays stored.
    patched = client.patch(
        f"{url}/identity", json={"config": {"identity": {"list_limit": 7}}}, headers=admin
    )
    assert _config(patched)["identity"] == {"driver": "ldap", "list_limit": 7}
    option = client.patch(
        f"{url}/identity/driver", json={"config": {"driver": "sql"}}, headers=admin
    )
    assert _config(option)["identity"]["driver"] == "sql"
    assert SECRET not in option.text
    # The password can be changed (it is set) but is never answered.
    changed = client.patch(
        f"{url}/ldap/password", json={"config": {"password": "x"}}, headers=admin
    )
    assert "password" not in _config(changed)["ldap"]

    # Keystone's refusals: groups and options it does not allow, updates of what is not set.
    for wrong in ({"assignment": {"driver": "sql"}}, {"ldap": {"colour": "blue"}}, {}):
        assert client.patch(url, json={"config": wrong}, headers=admin).status_code == 403
    assert client.get(f"{url}/assignment", headers=admin).status_code == 403
    assert (
        client.patch(
            f"{url}/ldap/user", json={"config": {"user": "cn=admin"}}, headers=admin
        ).status_code
        == 404
    )
    assert (
        client.patch(
            f"{url}/ldap", json={"config": {"identity": {"driver": "sql"}}}, headers=admin
        ).status_code
        == 403
    )
    assert client.put(url, json={"config": "ldap"}, headers=admin).status_code == 400

    # Deletes: an option, a group, the whole; a second time 404 (the whole: quietly done).
    assert client.delete(f"{url}/identity/driver", headers=admin).status_code == 204
    assert client.get(f"{url}/identity/driver", headers=admin).status_code == 404
    assert client.delete(f"{url}/identity/driver", headers=admin).status_code == 404
    assert client.delete(f"{url}/ldap", headers=admin).status_code == 204
    assert client.get(f"{url}/ldap", headers=admin).status_code == 404
    assert client.put(url, json={"config": CONFIG}, headers=admin).status_code == 200
    assert client.delete(url, headers=tenant.headers).status_code == 403
    assert client.delete(url, headers=admin).status_code == 204
    assert client.get(url, headers=admin).status_code == 404
    assert client.delete(url, headers=admin).status_code == 204


def test_keystone_defaults_and_security_compliance(client: TestClient, admin_token: str) -> None:
    admin = {"X-Auth-Token": admin_token}
    defaults = _config(client.get(f"{V3}/domains/config/default", headers=admin))
    assert set(defaults) == {"identity", "ldap"}
    assert defaults["identity"] == {"driver": "sql", "list_limit": None}
    assert "password" not in defaults["ldap"]
    ldap = _config(client.get(f"{V3}/domains/config/ldap/default", headers=admin))
    assert ldap == {"ldap": defaults["ldap"]}
    url = _config(client.get(f"{V3}/domains/config/ldap/url/default", headers=admin))
    assert url == {"url": "ldap://localhost"}
    for refused in ("ldap/password", "ldap/colour", "resource"):
        answer = client.get(f"{V3}/domains/config/{refused}/default", headers=admin)
        assert answer.status_code == 403, refused

    tenant = make_tenant(client, admin_token)  # any token reads the password rules
    rules = client.get(f"{V3}/domains/default/config/security_compliance", headers=tenant.headers)
    assert _config(rules) == {
        "security_compliance": {"password_regex": None, "password_regex_description": None}
    }
    other = _domain(client, admin, "no-rules")
    refused = client.get(f"{V3}/domains/{other}/config/security_compliance", headers=admin)
    assert refused.status_code == 403


def test_configuration_goes_with_its_domain_and_to_replicas(
    client: TestClient, admin_token: str, services: Services, replica: Services
) -> None:
    admin = {"X-Auth-Token": admin_token}
    domain_id = _domain(client, admin, "replicated")
    url = f"{V3}/domains/{domain_id}/config"
    body = {"config": {**CONFIG, "ldap": {**CONFIG["ldap"], "password": SECRET}}}
    assert client.put(url, json=body, headers=admin).status_code == 201

    follower = follower_of(client, replica)
    assert follower.sync() > 0
    held = tables(replica)["domain_config_options"]
    assert held == tables(services)["domain_config_options"]
    assert len(held) == 4  # the password too: the replica holds what the master holds

    disabled = client.patch(
        f"{V3}/domains/{domain_id}", json={"domain": {"enabled": False}}, headers=admin
    )
    assert disabled.status_code == 200
    assert client.delete(f"{V3}/domains/{domain_id}", headers=admin).status_code == 204
    assert tables(services)["domain_config_options"] == []
    assert follower.sync() > 0
    assert tables(replica)["domain_config_options"] == []
