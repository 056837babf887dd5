"""A Cinder resource's bytes on disk: the areas of the site's data dir, sparse files written
atomically, sparse-aware copies and checksums.

Under the site's data dir: ``volumes/<id>.img`` (a sparse file of the volume's size),
``volumes/unmanaged/<name>`` (files ``manage`` can adopt), ``snapshots/<id>.img`` and
``backup-tmp/<backup id>.img`` (the point-in-time copy a running backup reads). Files are
written under a ``.part`` name and renamed once complete.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cascade_sim.region import Region

GIB = 1 << 30
CHUNK = 4 << 20  # a backup's unit of storage, and the unit a checksum reads
ZEROS = bytes(CHUNK)
AREAS = {"volume": "volumes", "snapshot": "snapshots", "staging": "backup-tmp"}


def area_dir(site: Region, area: str) -> Path:
    directory = site.config.data_dir / AREAS[area]
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def data_file(site: Region, area: str, resource_id: str) -> Path:
    return area_dir(site, area) / f"{resource_id}.img"


def unmanaged_dir(site: Region) -> Path:
    directory = site.config.data_dir / "volumes" / "unmanaged"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def gib(nbytes: int) -> int:
    """The whole GiB holding ``nbytes`` (at least one)."""
    return max(1, -(-nbytes // GIB))


@contextmanager
def replacing(target: Path, size: int) -> Iterator[int]:
    """A descriptor on a new sparse file of ``size`` bytes, renamed over ``target`` only once
    the block completes; on failure ``target`` is left as it was."""
    partial = target.with_name(target.name + ".part")
    try:
        with partial.open("wb") as writer:
            writer.truncate(size)
            yield writer.fileno()
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def extents(fd: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The ranges of ``[start, end)`` of an open file holding data; holes are skipped."""
    position = start
    while position < end:
        try:
            data = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as error:
            if error.errno == errno.ENXIO:  # no data after position
                return
            raise
        if data >= end:
            return
        position = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        yield data, position


def sparse_copy(source: Path, target: Path, size: int) -> None:
    """``target`` becomes a ``size``-byte copy of ``source`` whose holes stay holes."""
    with source.open("rb") as reader, replacing(target, size) as fd:
        length = min(os.fstat(reader.fileno()).st_size, size)
        for start, end in extents(reader.fileno(), 0, length):
            position = start
            while position < end:
                copied = os.copy_file_range(reader.fileno(), fd, end - position, position, position)
                if copied == 0:  # the source shrank under us
                    break
                position += copied


def file_sha256(path: Path) -> str:
    """The file's sha256; holes are hashed as zeros without being read (reading them would
    fill the page cache with zeros)."""
    digest = hashlib.sha256()
    zeros = memoryview(ZEROS)
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        done = 0
        for start, end in [*extents(handle.fileno(), 0, size), (size, size)]:
            for offset in range(done, start, CHUNK):
                digest.update(zeros[: min(CHUNK, start - offset)])
            for offset in range(start, end, CHUNK):
                digest.update(os.pread(handle.fileno(), min(CHUNK, end - offset), offset))
            done = end
    return digest.hexdigest()


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON under a ``.part`` name, then rename it over ``path``."""
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(data))
    os.replace(partial, path)
