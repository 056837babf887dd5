"""Moving an image's bytes from the source site's Glance into the target's staging: ranged
reads of ``chunk_bytes`` each (``GET /v2/images/{id}/file`` with ``Range``, answered 206, read
from the socket in one piece), each chunk ``PUT`` as its segment as it was read (no copy, no
hash: the target hashes once, at the import, and the copy verifies those hashes against the
source's; a chunk cut short is not stored, and one of the wrong size is not trusted on
resume), under the per-site bandwidth limit.

The chunks move in a bounded pipeline: ``IN_FLIGHT`` threads each read a chunk and put it, so
one chunk's reads overlap others' PUTs and at most ``IN_FLIGHT`` chunks are held in memory.
A chunk is confirmed when the store answers its PUT (``image_staging``: the store's listing
is the record, nothing else is written per chunk), and then reported to ``on_progress`` (in
the calling thread); ``on_send`` is told a chunk's size as its PUT starts (in the sending
thread; a transient failure's retry is not told again), so a caller can count what it set out
to send, confirmed or not.
When anything fails (a site, a raising ``on_progress``, a stop) no new chunk starts and those
in flight finish before the failure is raised, so a resumed copy sends none of them again;
a process killed outright loses the chunks it was putting (at most ``IN_FLIGHT``, partly
sent). Without a bandwidth limit a chunk is ``CHUNK_BYTES``; under one, a second's worth
(``chunk_bytes_for``).

The bandwidth limit is the caller's (``cascade.replication.bandwidth``): a chunk's PUT waits
for its size in it. May import ``cascade.replication.image_staging``,
``cascade.replication.bandwidth``, ``cascade.sites`` and openstacksdk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import islice

from openstack.connection import Connection

from cascade.replication.bandwidth import RateLimit
from cascade.replication.image_staging import ImageCopyFailed, Ledger, checked, store
from cascade.sites.driver import SiteDriver

Progress = Callable[[int, int], None]
Sending = Callable[[int], None]  # told a chunk's size as its PUT starts

IN_FLIGHT = 3  # chunks read or being put at once (and held in memory)
CHUNK_BYTES = 16 << 20  # a chunk without a bandwidth limit (256 MiB copied 14% faster than at 8)
MIN_LIMITED_CHUNK = 256 << 10


def chunk_bytes_for(limit_bytes_per_s: float | None) -> int:
    """The chunk size of a copy under a bandwidth limit: one second's worth, between
    ``MIN_LIMITED_CHUNK`` and ``CHUNK_BYTES``. A chunk's PUT waits for its whole size in the
    bucket, so at a low limit smaller chunks keep progress moving and lose less to a kill (at
    most ``IN_FLIGHT`` seconds' worth)."""
    if limit_bytes_per_s is None:
        return CHUNK_BYTES
    return max(MIN_LIMITED_CHUNK, min(CHUNK_BYTES, int(limit_bytes_per_s)))


def _read_range(source: SiteDriver, image_id: str, start: int, end: int) -> bytes:
    def read(c: Connection) -> bytes:
        headers = {"Range": f"bytes={start}-{end - 1}"}
        path = f"/images/{image_id}/file"
        with checked(c.image.get(path, headers=headers, stream=True)) as answer:
            body = bytes(answer.raw.read(decode_content=True))  # in one piece, not 10 KiB ones
        if answer.status_code != 206 or len(body) != end - start:
            raise ImageCopyFailed(
                f"site {source.access.name}: image {image_id} answered bytes {start}-{end - 1} "
                f"with HTTP {answer.status_code} and {len(body)} bytes"
            )
        return body

    return source.call(f"read bytes {start}-{end - 1} of image {image_id}", read)


@dataclass
class Transfer:
    """Sends the chunks of one image to the target's staging (``ledger``: which copy, whose
    header gives the image's size and the chunk size)."""

    source: SiteDriver
    target: SiteDriver
    image_id: str
    ledger: Ledger
    limit: RateLimit | None
    on_send: Sending | None = None

    def _send(self, seq: int) -> int:
        """Read and put one chunk; its size."""
        start = seq * int(self.ledger.header["chunk_bytes"])
        chunk = _read_range(self.source, self.image_id, start, start + self.ledger.chunk_size(seq))
        if self.limit is not None:
            self.limit.take(len(chunk), self.target.stop)
        if self.on_send is not None:
            self.on_send(len(chunk))
        headers = {"Content-Type": "application/octet-stream"}
        name = self.ledger.staging.segment(seq)
        store(self.target, f"stage {name}", "PUT", name, data=chunk, headers=headers)
        return len(chunk)

    def stage(self, count: int, staged: set[int], on_progress: Progress | None) -> int:
        """Stage every one of the image's ``count`` chunks not ``staged`` already; the bytes
        sent. ``on_progress(done, total)`` after every chunk, those already staged first."""
        size = int(self.ledger.header["size"])
        done = sent = 0
        for seq in sorted(staged):
            done += self.ledger.chunk_size(seq)
            if on_progress is not None:
                on_progress(done, size)
        todo: Iterator[int] = (seq for seq in range(count) if seq not in staged)
        with ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="image-copy") as pool:
            running = {pool.submit(self._send, seq) for seq in islice(todo, IN_FLIGHT)}
            try:
                while running:
                    finished, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        sent += future.result()  # the first failure stops the copy
                        done += future.result()
                        if on_progress is not None:
                            on_progress(done, size)
                        running |= {pool.submit(self._send, seq) for seq in islice(todo, 1)}
            finally:  # on a failure no chunk starts any more; those in flight finish
                for future in running:
                    future.cancel()
        return sent
