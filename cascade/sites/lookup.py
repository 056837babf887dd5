"""A site's image, flavor or network by the name or id a request gave, in one request.

openstacksdk's ``find_*`` first fetches the value as an id, and lists by name only after the
site's 404: a server created with an image and a network named, as Cascade's requests mostly
name them, cost its site two 404s before the listings. Here a value written as Glance and
Neutron write ids (a UUID, hyphenated, any case) is fetched by id (a name written so is not
looked for); any other value, 32 bare hex digits included, is listed by name, filtered by the
site (Glance's and Neutron's ``name=``). Nova cannot filter flavors by
name and lets a flavor's id be any string: a flavor is found in Nova's summary listing (ids and
names), by id first, then by name; only a value the listing lacks is fetched by id (a private
flavor an admin's listing does not show), where ``find_flavor`` always asks for the name as
an id first and then lists every flavor in detail.
Nothing found is openstacksdk's ``NotFoundException``, several with the name its
``DuplicateResource``, as ``find_*`` would raise them. Imports openstacksdk only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection


def image(c: Connection, name_or_id: str) -> Any:
    return _by_name_or_id("image", name_or_id, c.image.get_image, lambda n: c.image.images(name=n))


def network(c: Connection, name_or_id: str) -> Any:
    listing = c.network.networks
    return _by_name_or_id("network", name_or_id, c.network.get_network, lambda n: listing(name=n))


def flavor(c: Connection, name_or_id: str) -> Any:
    listed = list(c.compute.flavors(details=False))
    for found in listed:
        if found.id == name_or_id:
            return found
    named = [found for found in listed if found.name == name_or_id]
    if named:
        return _one("flavor", name_or_id, named)
    return c.compute.get_flavor(name_or_id)  # a 404 names the value


def _by_name_or_id(
    kind: str, value: str, get: Callable[[str], Any], listing: Callable[[str], Iterable[Any]]
) -> Any:
    if _is_uuid(value):
        return get(value)  # a 404 names the id
    return _one(kind, value, list(listing(value)))


def _one(kind: str, value: str, found: list[Any]) -> Any:
    if not found:
        raise sdk_exceptions.NotFoundException(f"No {kind} found for {value}")
    if len(found) > 1:
        raise sdk_exceptions.DuplicateResource(f"More than one {kind} exists with the name {value}")
    return found[0]


def _is_uuid(value: str) -> bool:
    """Whether ``value`` is a UUID in the form sites give ids (``uuid.UUID`` alone would also
    take 32 bare hex digits, braces or a ``urn:uuid:`` prefix, which no site id has)."""
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False
