"""Chunk files written and read past the page cache (``O_DIRECT``), for the directory chunk
store.

A backup writes each 4 MiB chunk once and does not read it back; copying it into the page
cache cost more kernel CPU than anything else a backup does (1.6-1.8 s per GiB, against
0.1-0.3 s written directly, on this project's 2-core machine). ``O_DIRECT`` wants aligned
memory and lengths, so the bytes go through one page-aligned buffer per thread (one copy in
user space). ``write_direct`` writes a new file atomically (a temporary file whose name
starts with a dot, renamed; mode 0600; made durable later by the store's ``sync``), or
writes nothing and answers False where the length is not a multiple of ``ALIGN`` or the
filesystem refuses ``O_DIRECT`` (tmpfs): the caller then writes it through the page cache.
A restore reads each chunk once: ``read_direct`` reads it into the same buffer (half the CPU
of a read through the cache, measured; and the cache's pages are left to the site-sims and
the snapshots beside it), or answers None where ``O_DIRECT`` is refused. Imports only the
standard library.
"""

from __future__ import annotations

import errno
import mmap
import os
import secrets
import threading
from pathlib import Path

ALIGN = 4096  # bytes: the largest logical block size O_DIRECT asks lengths to be a multiple of
_BUFFERS = threading.local()  # per thread: its page-aligned buffer, grown to the largest write


def _buffer(length: int) -> memoryview:
    """This thread's page-aligned buffer, at least ``length`` bytes, as a view of that many."""
    buffer: mmap.mmap | None = getattr(_BUFFERS, "buffer", None)
    if buffer is None or len(buffer) < length:
        buffer = _BUFFERS.buffer = mmap.mmap(-1, length)
    return memoryview(buffer)[:length]


def _aligned(data: bytes) -> memoryview:
    """``data`` copied into this thread's page-aligned buffer."""
    view = _buffer(len(data))
    view[:] = data
    return view


def write_direct(path: Path, data: bytes) -> bool:
    """Atomically write ``data`` to ``path`` past the page cache; False (nothing written)
    if it cannot be written so."""
    if not data or len(data) % ALIGN:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}-{secrets.token_hex(6)}")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_DIRECT, 0o600)
    except OSError as error:
        if error.errno == errno.EINVAL:  # the filesystem has no direct I/O
            return False
        raise
    try:
        try:
            view = _aligned(data)
            written = 0
            while written < len(data):
                written += os.write(fd, view[written:])
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno == errno.EINVAL:
            return False  # direct I/O refused after all: nothing is left written
        raise
    return True


def read_direct(path: Path) -> bytes | None:
    """The file's bytes read past the page cache (a chunk written so is on disk only: read
    through the cache it would take pages the kernel must first clear); None where the
    filesystem refuses ``O_DIRECT``. Raises ``FileNotFoundError`` for a missing file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError as error:
        if error.errno == errno.EINVAL:
            return None
        raise
    try:
        size = os.fstat(fd).st_size
        if not size:
            return b""
        view = _buffer(-(-size // ALIGN) * ALIGN)
        done = 0
        while done < size:
            count = os.preadv(fd, [view[done:]], done)
            if count == 0:
                break  # the file shrank under us: what was there
            done += count
        return bytes(view[:done])
    except OSError as error:
        if error.errno == errno.EINVAL:  # direct reads refused after all
            return None
        raise
    finally:
        os.close(fd)
