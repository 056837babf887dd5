"""Files written and read past the page cache (``O_DIRECT``): backup chunks in the directory
chunk store (``cascade.protection.chunk_store``) and the emulated region's volume blocks
(``cascade_sim.volume``).

Both move whole 4 MiB blocks that are read again, if at all, once and past the cache too (a
restore's chunks, a restored volume's digests). Through the page cache each byte
is copied into pages the kernel must first allocate and clear, which on a freshly booted
virtual machine costs more than anything else these paths do (1.6-2.3 CPU s per GiB written,
against 0.1-0.3 s written directly, on this project's 2-core machine; overwriting pages
already cached costs 0.17 s). ``O_DIRECT`` wants aligned memory, offsets and lengths, so the
bytes go through one page-aligned buffer per thread (one copy in user space).

- ``write_direct``: a new file, atomically (a temporary file whose name starts with a dot,
  renamed; mode 0600; the caller makes it durable).
- ``pwrite_direct``: bytes into an existing file at an offset, in place.
- ``read_direct``: a whole file; ``pread_direct``: a range of one, into the thread's buffer.

Each answers False or None, having written nothing, where the offset or length is not a
multiple of ``ALIGN`` or the filesystem refuses ``O_DIRECT`` (tmpfs): the caller then goes
through the page cache. The kernel keeps direct and cached access to the same file coherent
(a direct write drops the cached pages of its range; a direct read first writes back dirty
ones). Imports only the standard library.
"""

from __future__ import annotations

import errno
import mmap
import os
import secrets
import threading
from pathlib import Path

ALIGN = 4096  # bytes: the largest logical block size O_DIRECT asks lengths to be a multiple of
_BUFFERS = threading.local()  # per thread: its page-aligned buffer, grown to the largest use


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


def _open(path: Path, flags: int, mode: int = 0o600) -> int | None:
    """``path`` opened with ``O_DIRECT``; None where the filesystem has no direct I/O."""
    try:
        return os.open(path, flags | os.O_DIRECT, mode)
    except OSError as error:
        if error.errno == errno.EINVAL:
            return None
        raise


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = _aligned(data)
    written = 0
    while written < len(data):
        written += os.pwrite(fd, view[written:], offset + written)


def write_direct(path: Path, data: bytes) -> bool:
    """Atomically write ``data`` to ``path`` past the page cache; False (nothing written)
    if it cannot be written so."""
    if not data or len(data) % ALIGN:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}-{secrets.token_hex(6)}")
    fd = _open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    if fd is None:
        return False
    try:
        try:
            _write_all(fd, data, 0)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno == errno.EINVAL:
            return False  # direct I/O refused after all: nothing is left written
        raise
    return True


def pwrite_direct(path: Path, data: bytes, offset: int) -> bool:
    """Write ``data`` into the existing file ``path`` at ``offset`` past the page cache;
    False (nothing written) if it cannot be written so."""
    if not data or len(data) % ALIGN or offset % ALIGN:
        return False
    fd = _open(path, os.O_WRONLY)
    if fd is None:
        return False
    try:
        _write_all(fd, data, offset)
    except OSError as error:
        if error.errno == errno.EINVAL:  # refused before a byte was written
            return False
        raise
    finally:
        os.close(fd)
    return True


def _read_into(fd: int, view: memoryview, offset: int) -> int:
    """Fill ``view`` from ``offset`` on; the bytes read (fewer at the end of the file)."""
    done = 0
    while done < len(view):
        count = os.preadv(fd, [view[done:]], offset + done)
        if count == 0:
            break
        done += count
    return done


def pread_direct(path: Path, offset: int, length: int) -> memoryview | None:
    """Up to ``length`` bytes of ``path`` from ``offset`` (fewer at its end) read past the
    page cache into this thread's buffer: valid until the thread's next use of it. None
    where the range is not aligned or the filesystem refuses ``O_DIRECT``."""
    if offset % ALIGN:
        return None
    fd = _open(path, os.O_RDONLY)
    if fd is None:
        return None
    try:
        view = _buffer(max(ALIGN, -(-length // ALIGN) * ALIGN))
        return view[: min(length, _read_into(fd, view, offset))]
    except OSError as error:
        if error.errno == errno.EINVAL:  # direct reads refused after all
            return None
        raise
    finally:
        os.close(fd)


def read_direct(path: Path) -> bytes | None:
    """The file's bytes read past the page cache (a file written so is on disk only: read
    through the cache it would take pages the kernel must first clear); None where the
    filesystem refuses ``O_DIRECT``. Raises ``FileNotFoundError`` for a missing file."""
    view = pread_direct(path, 0, path.stat().st_size)
    return None if view is None else bytes(view)
