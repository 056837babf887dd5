"""Finding a site's image, flavor or network by the name or id a request gave
(``cascade.sites.lookup``), through openstacksdk against a real emulated site: by name or by
id, nothing found or several found named as openstacksdk names them, and no 404 asked for
on the way (what openstacksdk's ``find_*`` costs a site for every name)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection

from cascade.sites import lookup
from cascade.sites.driver import SiteAccess, SiteDriver
from tests.sim.conftest import SITE_ADMIN_PASSWORD
from tests.site_server import threaded_site


class Statuses:
    """Every HTTP status the connection's session was answered, in order."""

    def __init__(self, c: Connection) -> None:
        self.seen: list[int] = []
        c.session.session.hooks["response"].append(self._seen)

    def _seen(self, response: object, *_args: object, **_kwargs: object) -> None:
        self.seen.append(getattr(response, "status_code", 0))


@pytest.fixture
def c(tmp_path: Path) -> Iterator[Connection]:
    with threaded_site(tmp_path / "site", "lookup") as site:
        access = SiteAccess(
            site.name, site.region_name, site.auth_url, "admin", SITE_ADMIN_PASSWORD, "admin"
        )
        yield SiteDriver(access, deadline=30.0).connection


def test_images_and_networks_are_found_by_name_or_id_without_a_404(c: Connection) -> None:
    image = c.image.create_image(name="cirros", data=b"x" * 64, disk_format="raw")
    network = c.network.create_network(name="net-a")
    statuses = Statuses(c)
    assert lookup.image(c, "cirros").id == image.id
    assert lookup.image(c, image.id).id == image.id
    assert lookup.network(c, "net-a").id == network.id
    assert lookup.network(c, network.id).id == network.id
    assert 404 not in statuses.seen
    assert len(statuses.seen) == 4  # one request each
    # A name of 32 hex digits is a name: uuid.UUID would read it as an id the site lacks.
    hexadecimal = c.image.create_image(name="0123456789abcdef" * 2, data=b"z", disk_format="raw")
    assert lookup.image(c, "0123456789abcdef" * 2).id == hexadecimal.id


def test_flavors_are_found_by_id_before_name(c: Connection) -> None:
    small = c.compute.create_flavor(name="small", ram=512, vcpus=1, disk=1, id="f-small")
    # A flavor whose name is another's id: the id wins, as Nova's GET /flavors/{id} would.
    c.compute.create_flavor(name="f-small", ram=1024, vcpus=1, disk=1, id="f-other")
    statuses = Statuses(c)
    assert lookup.flavor(c, "small").id == small.id
    assert lookup.flavor(c, "f-small").id == small.id
    assert lookup.flavor(c, "f-other").name == "f-small"
    assert statuses.seen == [200, 200, 200]  # one listing each, no 404 asked for
    private = c.compute.create_flavor(name="p", ram=64, vcpus=1, disk=1, is_public=False)
    assert lookup.flavor(c, private.id).id == private.id  # not listed: fetched by its id


def test_nothing_found_and_several_found_are_named(c: Connection) -> None:
    for _ in range(2):
        c.image.create_image(name="twin", data=b"y" * 64, disk_format="raw")
    with pytest.raises(sdk_exceptions.NotFoundException, match="No image found for ghost"):
        lookup.image(c, "ghost")
    with pytest.raises(sdk_exceptions.DuplicateResource, match="with the name twin"):
        lookup.image(c, "twin")
    with pytest.raises(sdk_exceptions.NotFoundException, match="ghost"):
        lookup.flavor(c, "ghost")
    with pytest.raises(sdk_exceptions.NotFoundException):  # an id the site does not have
        lookup.network(c, "00000000-0000-4000-8000-000000000000")
