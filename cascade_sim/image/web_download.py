"""Glance's ``web-download`` import, honestly limited to the site's own object store: the
site makes no outbound requests, so the URI must be an object (a Dynamic Large Object's
segments included) under this site's ``/object-store/v1/AUTH_<project>``, which the caller's
token may read. The bytes are concatenated into the image's data with its md5 ``checksum``
and sha512 ``os_hash_value``, as Glance computes them; the image is ``importing`` meanwhile
and ``active`` after (in the request, as the emulator's imports are). Bytes beyond the storage
quota (``quota``) fail the import: 413, and the image is ``queued`` again, as Glance's failed
import leaves it. May import
``cascade_sim.objects`` besides what the package may."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from cascade.identity import AuthContext
from cascade_sim import objects
from cascade_sim.errors import SimError
from cascade_sim.image import data, quota
from cascade_sim.region import Region

STORE_PATH = "/object-store/v1/AUTH_"


def _object_in_store(site: Region, uri: Any) -> tuple[str, str, str]:
    """The account, container and object name of a URI in the site's own object store."""
    if not isinstance(uri, str) or not uri:
        raise SimError(400, "The web-download method needs a 'uri' (a string).")
    own, given = urlsplit(site.config.base_url), urlsplit(uri)
    if (given.scheme, given.netloc) != (own.scheme, own.netloc) or not given.path.startswith(
        STORE_PATH
    ):
        message = (
            f"URI {uri!r} is not in this site's object store: web-download here reads only "
            f"{site.config.base_url}{STORE_PATH}<project>/<container>/<object> (the site "
            "makes no outbound requests)."
        )
        raise SimError(400, message)
    account, _, rest = unquote(given.path[len(STORE_PATH) :]).partition("/")
    container, _, name = rest.partition("/")
    if not container or not name:
        raise SimError(400, f"URI {uri!r} names no object (<container>/<object>).")
    return account, container, name


def import_from_uri(
    site: Region, caller: AuthContext, image_id: str, method: dict[str, Any]
) -> None:
    """The object at ``method['uri']`` becomes the queued image's data; it is active after."""
    account, container, name = _object_in_store(site, method.get("uri"))
    owner = data.begin(site, caller, image_id, "queued", "importing")
    partial = data.part_path(site, image_id)
    try:
        sources = objects.object_files(site, caller, account, container, name)
        size = sum(source.stat().st_size for source in sources)
        quota.require_room(site, owner, image_id, size)
        digest = data.joined(sources, partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        data.set_status(site, image_id, "queued")
        raise
    data.activate(site, image_id, digest, partial)
