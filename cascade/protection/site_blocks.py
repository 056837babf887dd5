"""The site's block-data service (catalog type ``block-data``), each call a function of an
openstacksdk ``Connection`` for ``SiteDriver.call``: a snapshot's allocated blocks or the
blocks changed since an older snapshot of the same volume, a snapshot's block, a whole block
written into an available volume, and per-block sha256 digests of a volume or a snapshot
computed at the site. Requests go through the connection's keystoneauth1 session (tokens,
the catalog's endpoint for the connection's region, looked up once per connection); an
error answer raises keystoneauth1's HTTP error, which ``SiteDriver.call`` classifies.
Imports only openstacksdk and keystoneauth1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from keystoneauth1.exceptions import EndpointNotFound
from keystoneauth1.session import Session
from openstack.connection import Connection

SERVICE_TYPE = "block-data"
_ENDPOINTS: WeakKeyDictionary[Connection, str] = WeakKeyDictionary()  # per connection
OCTETS = {"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"}


@dataclass(frozen=True)
class BlockList:
    block_size: int
    volume_size: int
    blocks: list[int]


def _endpoint(c: Connection) -> str:
    """The site's block-data endpoint, found in the connection's catalog once (keystoneauth1
    copies the whole catalog at every lookup: a backup would, once per block)."""
    found = _ENDPOINTS.get(c)
    if found is None:
        session: Session = c.session
        region = c.config.get_region_name(SERVICE_TYPE) or None
        found = session.get_endpoint(
            service_type=SERVICE_TYPE, interface="public", region_name=region
        )
        if not found:
            raise EndpointNotFound(f"no public {SERVICE_TYPE} endpoint in region {region}")
        _ENDPOINTS[c] = found
    return found


def _request(c: Connection, method: str, path: str, **kwargs: Any) -> Any:
    """``method path`` at the site's block-data endpoint; an error status raises."""
    session: Session = c.session
    return session.request(_endpoint(c).rstrip("/") + path, method, raise_exc=True, **kwargs)


def snapshot_blocks(c: Connection, snapshot_id: str, since: str | None = None) -> BlockList:
    """The snapshot's allocated blocks or, with ``since``, those written after that older
    snapshot of the same volume (no block is read to list them)."""
    params = {} if since is None else {"since": since}
    body = _request(c, "GET", f"/snapshots/{snapshot_id}/blocks", params=params).json()
    return BlockList(int(body["block_size"]), int(body["volume_size"]), list(body["blocks"]))


def read_block(c: Connection, snapshot_id: str, index: int) -> bytes:
    """The block's bytes, read whole from the socket (requests' ``content`` would assemble
    them from 10 KiB pieces: most of a backup's CPU)."""
    path = f"/snapshots/{snapshot_id}/blocks/{index}"
    response = _request(c, "GET", path, headers=OCTETS, stream=True)
    with response:
        return bytes(response.raw.read(decode_content=True))


def write_block(c: Connection, volume_id: str, index: int, data: bytes) -> None:
    """Write a whole block into an available volume (a restore's target)."""
    _request(c, "PUT", f"/volumes/{volume_id}/blocks/{index}", data=data, headers=OCTETS)


def _digests(c: Connection, path: str) -> dict[int, str]:
    digests = _request(c, "GET", path).json()["digests"]
    return {int(index): str(digest) for index, digest in digests.items()}


def volume_digests(c: Connection, volume_id: str) -> dict[int, str]:
    """sha256 hex per non-zero block of the volume, computed at the site."""
    return _digests(c, f"/volumes/{volume_id}/digests")


def snapshot_digests(c: Connection, snapshot_id: str) -> dict[int, str]:
    """sha256 hex per non-zero block of the snapshot, computed at the site."""
    return _digests(c, f"/snapshots/{snapshot_id}/digests")
