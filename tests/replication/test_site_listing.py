"""Replication's listings and writes at a real site-sim, without Cascade: security groups,
keypairs and flavors listed a page at a time (pages of two here) and read completely, the
project's groups only; and two writers importing one keypair at once (a keypairs policy's
job or audit and the keypair's own operation): the one that meets Nova's 409 takes the key
the other imported when it is the same, and fails naming the conflict when it is not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openstack.connection import Connection

from cascade.cli.embedded import EmbeddedSite
from cascade.replication import kinds
from cascade.replication.flavor_kind import FLAVORS
from cascade.replication.group_kind import SECURITY_GROUPS
from cascade.replication.keypair_kind import KEYPAIRS, import_key
from cascade.replication.keypairs import fingerprint
from cascade.sites.driver import SiteCallFailed, SiteDriver
from tests.conftest import ADMIN_PASSWORD
from tests.engine.conftest import public_key

pytestmark = pytest.mark.xdist_group("site-listing")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSite]:
    base: Path = tmp_path_factory.mktemp("site-listing")
    started = EmbeddedSite("site-l", base / "site", ADMIN_PASSWORD)
    try:
        started.start()
        yield started
    finally:
        started.stop()


def call(site: EmbeddedSite, what: str, fn: Any) -> Any:
    return SiteDriver(site.access(), deadline=10.0).call(what, fn)


def test_groups_keypairs_and_flavors_are_listed_page_by_page(
    site: EmbeddedSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kinds, "PAGE", 2)

    def seed(c: Connection) -> None:
        web = c.network.create_security_group(name="pg-web", description="front")
        for n in range(4):
            c.network.create_security_group(name=f"pg-{n}", description=str(n))
        c.network.create_security_group_rule(
            security_group_id=web.id, direction="ingress", protocol="tcp",
            port_range_min=80, port_range_max=80, remote_group_id=web.id,
        )  # fmt: skip
        for n in range(5):
            c.compute.create_keypair(name=f"pg-key-{n}", public_key=public_key())
            c.compute.create_flavor(id=f"pg-f{n}", name=f"pg.f{n}", vcpus=1, ram=64, disk=1)

    call(site, "seed", seed)
    requests: list[dict[str, Any]] = []

    def listed(c: Connection) -> tuple[Any, Any, Any]:
        get = c.network.get

        def logged(path: str, **kwargs: Any) -> Any:
            requests.append({"path": path, **kwargs.get("params", {})})
            return get(path, **kwargs)

        monkeypatch.setattr(c.network, "get", logged)
        return SECURITY_GROUPS.listing(c), KEYPAIRS.listing(c), FLAVORS.listing(c)

    groups, keys, flavors = call(site, "list", listed)
    assert {f"pg-{n}" for n in range(4)} | {"pg-web", "default"} <= set(groups)
    (rule,) = [r for r in groups["pg-web"].state["rules"] if '"tcp"' in r]
    assert '"remote_group": "pg-web"' in rule  # named, not the site's id
    assert {f"pg-key-{n}" for n in range(5)} <= set(keys)
    assert keys["pg-key-0"].state["fingerprint"].count(":") == 15
    assert {f"pg.f{n}" for n in range(5)} <= set(flavors)
    # Neutron pages by two, the project's groups only; the last page names no next one.
    assert len(requests) == -(-len(groups) // 2) > 2
    assert all(r["limit"] == 2 for r in requests)
    assert all(r["project_id"] == requests[0]["project_id"] for r in requests)
    assert [bool(r.get("marker")) for r in requests] == [False] + [True] * (len(requests) - 1)


def test_a_keypair_imported_twice_at_once_converges_quietly(site: EmbeddedSite) -> None:
    key, other = public_key(), public_key()
    state = {"fingerprint": fingerprint(key), "public_key": key}

    def race(c: Connection) -> tuple[str, str]:
        # The audit's job and the keypair's own import both found no key: each imports.
        first = KEYPAIRS.write(c, "raced", state, None, {})
        theirs = import_key(c, "raced", key)  # the loser meets Nova's 409
        return first, theirs

    assert call(site, "import raced twice", race) == ("raced", fingerprint(key))
    assert call(site, "again", lambda c: KEYPAIRS.write(c, "raced", state, None, {})) == "raced"
    call(
        site,
        "the site's own key",
        lambda c: c.compute.create_keypair(name="mine", public_key=other),
    )
    with pytest.raises(SiteCallFailed) as failure:
        call(site, "import mine", lambda c: KEYPAIRS.write(c, "mine", state, None, {}))
    assert failure.value.site == "site-l"
    assert "a different key named mine" in failure.value.message
    assert fingerprint(other) in failure.value.message
    keys = call(site, "list", KEYPAIRS.listing)
    assert keys["mine"].state["fingerprint"] == fingerprint(other)  # left as it was
