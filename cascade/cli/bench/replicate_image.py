"""The image-copy half of ``cascade bench replicate`` (``replicate`` has the command, the
audit's half and the report): a copy against a plain download of the same bytes in the same
run, and a resumed copy's resent bytes; also the bench's site-sims (``start_site``), which
the audit's half starts too.

Two site-sims; a random image of ``--image-mb`` MiB uploaded at site A, and a 1 MiB one
copied to B untimed (so that B has served each request of a copy once, as A has the upload's,
before anything is timed). The reference: one plain GET of ``/v2/images/{id}/file`` at A
through the keystoneauth1 session of an openstacksdk connection (Cascade's transport), timed.
Then ``copy_image(A, B, id)`` timed (ranged reads and PUTs into B's object store, several
chunks in flight, the import, hash verification, the staging removed). Then the copy at B is
deleted and copied again, interrupted once the progress callback sees half the bytes staged
(it raises; the chunks in flight finish), and resumed: ``resume_resent_fraction`` = (bytes
sent by the interrupted call, which are the segments B's store then holds, + bytes sent by
the resume - image size) / image size. Every copy uses ``--chunk-mb`` chunks
(``copy_image``'s default 16 MiB). Beside the seconds, the CPU seconds (user + system, from
``/proc``) of this process (the copy's worker) and of each site-sim during the download and
the timed copy, and the load average then: on a shared machine the wall time is noisy, the
CPU seconds much less. May import cascade.cli.embedded, cascade.replication and
cascade.sites.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection
from rich.console import Console

from cascade.cli.bench.engine_costs import cpu_seconds
from cascade.cli.embedded import EmbeddedSite
from cascade.errors import CascadeError, present
from cascade.replication.image_copy import CopyResult, copy_image
from cascade.replication.image_staging import Staging, listed_segments
from cascade.sites.driver import SiteDriver

console = Console()
PASSWORD = "bench-replicate-password"  # noqa: S105 - a throwaway deployment's password
MIB = 1 << 20
SITE_ENV = {"CASCADE_PASSWORD_HASH_ROUNDS": "4"}
Json = dict[str, Any]


def start_site(stack: ExitStack, work: Path, name: str) -> EmbeddedSite:
    """A site-sim of the bench, stopped when ``stack`` closes."""
    site = EmbeddedSite(name, work / name, PASSWORD, env=SITE_ENV)
    stack.callback(site.stop)
    site.start(timeout=120)
    return site


class _Interrupted(Exception):
    """Raised from the progress callback to stop a copy half-way."""


def _checked(response: Any) -> Any:
    sdk_exceptions.raise_from_response(response)
    return response


def _upload(driver: SiteDriver, data: bytes) -> str:
    body = {"name": "bench-image", "disk_format": "raw", "container_format": "bare"}

    def upload(c: Connection) -> str:
        image = _checked(c.image.post("/images", json=body)).json()
        octets = {"Content-Type": "application/octet-stream"}
        _checked(c.image.put(f"/images/{image['id']}/file", data=data, headers=octets))
        return str(image["id"])

    image_id: str = driver.call("upload the bench image", upload)
    return image_id


def _cpu_s(pids: dict[str, int]) -> dict[str, float]:
    """The CPU seconds (user + system) each of the processes ``pids`` has used so far, its
    own only: the site-sims are the bench's children, and were counted in the worker's
    figure too until 2026-12-04."""
    return {name: cpu_seconds([pid], descendants=False) for name, pid in pids.items()}


def _cpu_figures(label: str, pids: dict[str, int], before: dict[str, float]) -> Json:
    """``<label>_cpu_s_<process>`` for each of ``pids`` since ``before`` (their ``_cpu_s``)."""
    return {f"{label}_cpu_s_{name}": used - before[name] for name, used in _cpu_s(pids).items()}


def _download_s(driver: SiteDriver, image_id: str, size: int) -> float:
    """Seconds of one plain GET of the image's bytes."""
    started = time.perf_counter()
    body: bytes = driver.call(
        "download the bench image",
        lambda c: _checked(c.image.get(f"/images/{image_id}/file")).content,
    )
    seconds = time.perf_counter() - started
    if len(body) != size:
        raise CascadeError(f"the download gave {len(body)} bytes, not {size}")
    return seconds


def _delete_image(driver: SiteDriver, image_id: str) -> None:
    driver.call("delete the copy", lambda c: _checked(c.image.delete(f"/images/{image_id}")))


def _interrupted_at_half(source: SiteDriver, target: SiteDriver, image_id: str, chunk: int) -> int:
    """Copy until half the bytes are staged, then stop; the bytes sent (all were new): what
    the target's store holds once the chunks in flight at the stop have finished."""

    def stop_at_half(done: int, total: int) -> None:
        if done * 2 >= total:
            raise _Interrupted

    try:
        copy_image(source, target, image_id, chunk_bytes=chunk, on_progress=stop_at_half)
    except _Interrupted:
        staged = listed_segments(target, Staging(image_id)).values()
        return sum(int(segment["bytes"]) for segment in staged)
    raise CascadeError("the copy was not interrupted")


def _timed_copy(
    source: SiteDriver, target: SiteDriver, image_id: str, chunk: int
) -> tuple[CopyResult, float, float]:
    """The copy, its seconds, and the seconds until its last chunk was staged (the import,
    the verification and the staging's clean-up follow)."""
    staged = [0.0]
    started = time.perf_counter()

    def note(_done: int, _total: int) -> None:
        staged[0] = time.perf_counter() - started

    copied = copy_image(source, target, image_id, chunk_bytes=chunk, on_progress=note)
    return copied, time.perf_counter() - started, staged[0]


def image_figures(work: Path, stack: ExitStack, image_mb: int, chunk_mb: int) -> Json:
    sites = {name: start_site(stack, work, f"image-{name}") for name in ("a", "b")}
    a, b = (SiteDriver(site.access(), 120.0) for site in sites.values())
    pids = {f"site_{n}": present(s.pid, f"site {n}'s process") for n, s in sites.items()}
    pids["worker"] = os.getpid()
    size, chunk = image_mb * MIB, chunk_mb * MIB
    console.print("warming up: a 1 MiB image copied from site A to site B, untimed")
    copy_image(a, b, _upload(a, os.urandom(MIB)), chunk_bytes=chunk)
    console.print(f"uploading a random {image_mb} MiB image at site A")
    image_id = _upload(a, os.urandom(size))
    console.print("reference: one plain GET of the image at site A")
    cpu = _cpu_s(pids)
    download_s = _download_s(a, image_id, size)
    figures = _cpu_figures("raw_download", pids, cpu)
    console.print("copying it to site B")
    cpu = _cpu_s(pids)
    copied, copy_s, staging_s = _timed_copy(a, b, image_id, chunk)
    figures |= _cpu_figures("image_copy", pids, cpu) | {"load_average_1m": os.getloadavg()[0]}
    console.print("copying it again, interrupted at 50 %, then resumed")
    _delete_image(b, copied.target_image_id)
    before = _interrupted_at_half(a, b, image_id, chunk)
    resumed = copy_image(a, b, image_id, chunk_bytes=chunk)
    if resumed.checksum != copied.checksum:
        raise CascadeError("the resumed copy's checksum differs from the first copy's")
    return {
        "image_mb": image_mb,
        "chunk_mb": chunk_mb,
        "raw_download_s": download_s,
        "raw_download_mb_per_s": image_mb / download_s,
        "image_copy_s": copy_s,
        "image_copy_mb_per_s": image_mb / copy_s,
        "image_copy_staging_s": staging_s,
        "image_copy_import_s": copy_s - staging_s,
        "image_copy_vs_raw_download": download_s / copy_s,
        "resume_sent_before_bytes": before,
        "resume_sent_after_bytes": resumed.bytes_sent,
        "resume_resent_fraction": (before + resumed.bytes_sent - size) / size,
        **figures,
    }
