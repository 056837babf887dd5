"""The site's block-data service (catalog type ``block-data``), each call a function of an
openstacksdk ``Connection`` for ``SiteDriver.call``: a snapshot's allocated blocks or the blocks
changed since an older snapshot of the same volume, a run of a snapshot's contiguous blocks in one
response, a whole block written into an available volume, and per-block sha256 digests of a volume
or a snapshot computed at the site. Requests go through a keystoneauth1 session of their own per
connection, sharing the connection's auth plugin (its token) and found with its endpoint
once: the catalog's block-data endpoint for the connection's region, and the environment's
proxy and CA settings for that endpoint, read then (requests would scan the whole process
environment on every request: a fifth of a backup's CPU). An error answer raises
keystoneauth1's HTTP error, which ``SiteDriver.call`` classifies; an answer shorter than the
blocks asked for its ``ClientException`` (not retried). Imports only openstacksdk,
keystoneauth1 and requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import requests
from keystoneauth1.exceptions import ClientException, EndpointNotFound
from keystoneauth1.session import Session
from openstack.connection import Connection

SERVICE_TYPE = "block-data"
OCTETS = {"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"}
RAW = {**OCTETS, "Accept-Encoding": "identity"}  # blocks as stored: read without decoding


@dataclass(frozen=True)
class BlockList:
    block_size: int
    volume_size: int
    blocks: list[int]

    def length(self, index: int) -> int:
        """Bytes of block ``index`` (the volume's last block may be short)."""
        return min(self.block_size, self.volume_size - index * self.block_size)


@dataclass(frozen=True)
class _Service:
    """Where a connection's block-data calls go and the session they go through."""

    endpoint: str
    session: Session


_SERVICES: WeakKeyDictionary[Connection, _Service] = WeakKeyDictionary()  # per connection


def _service(c: Connection) -> _Service:
    """The site's block-data endpoint (keystoneauth1 copies the whole catalog at every
    lookup: a backup would, once per block) and a session for it with the environment's
    settings for it fixed (proxies, CA bundle), both made once per connection (two threads
    making them at once both work; one is kept)."""
    found = _SERVICES.get(c)
    if found is None:
        found = _SERVICES.setdefault(c, _new_service(c))
    return found


def _new_service(c: Connection) -> _Service:
    shared: Session = c.session
    region = c.config.get_region_name(SERVICE_TYPE) or None
    endpoint = shared.get_endpoint(
        service_type=SERVICE_TYPE, interface="public", region_name=region
    )
    if not endpoint:
        raise EndpointNotFound(f"no public {SERVICE_TYPE} endpoint in region {region}")
    with requests.Session() as reader:  # what requests itself reads per request, read once
        environment = reader.merge_environment_settings(
            endpoint, {}, None, shared.verify, shared.cert
        )
    session = Session(
        auth=shared.auth,
        verify=environment["verify"],
        cert=environment["cert"],
        timeout=shared.timeout,
        user_agent=shared.user_agent,
        additional_headers=shared.additional_headers,
    )
    session.session.trust_env = False
    session.session.proxies = environment["proxies"]
    return _Service(endpoint.rstrip("/"), session)


def _request(c: Connection, method: str, path: str, **kwargs: Any) -> Any:
    """``method path`` at the site's block-data endpoint; an error status raises."""
    service = _service(c)
    return service.session.request(service.endpoint + path, method, raise_exc=True, **kwargs)


def snapshot_blocks(c: Connection, snapshot_id: str, since: str | None = None) -> BlockList:
    """The snapshot's allocated blocks or, with ``since``, those written after that older
    snapshot of the same volume (no block is read to list them)."""
    params = {} if since is None else {"since": since}
    body = _request(c, "GET", f"/snapshots/{snapshot_id}/blocks", params=params).json()
    return BlockList(int(body["block_size"]), int(body["volume_size"]), list(body["blocks"]))


def read_blocks(c: Connection, snapshot_id: str, first: int, lengths: list[int]) -> list[bytes]:
    """The snapshot's blocks ``first``, ``first + 1``... (one per length, at most 16: the
    service's limit) from one response, each read whole from the socket (requests'
    ``content`` would assemble them from 10 KiB pieces: most of a backup's CPU)."""
    path = f"/snapshots/{snapshot_id}/blocks/{first}"
    params = {"count": len(lengths)}
    response = _request(c, "GET", path, params=params, headers=RAW, stream=True)
    with response:  # undecoded, each read is the socket's bytes (decoding would copy them)
        blocks = [response.raw.read(length, decode_content=False) for length in lengths]
    got = sum(map(len, blocks))
    if got != sum(lengths):  # a site that sent fewer blocks than asked (no runs)
        raise ClientException(
            f"blocks {first} to {first + len(lengths) - 1} of snapshot {snapshot_id}: "
            f"{got} bytes where {sum(lengths)} were asked for"
        )
    return blocks


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
