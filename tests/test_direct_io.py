"""``cascade.direct_io``: whole files and ranges of files written and read past the page
cache, or nothing done where that cannot be (the caller then goes through the cache)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cascade.direct_io import ALIGN, pread_direct, pwrite_direct, read_direct, write_direct

BLOCK = 4 << 20


@pytest.fixture
def direct(tmp_path: Path) -> bool:
    """Whether this filesystem takes O_DIRECT (not tmpfs): where it does not, every call
    must answer that it did nothing."""
    return write_direct(tmp_path / "probe", os.urandom(ALIGN))


def test_files_are_read_past_the_page_cache_whole_whatever_their_length(
    tmp_path: Path, direct: bool
) -> None:
    small, odd, large = os.urandom(ALIGN), os.urandom(5000), os.urandom(BLOCK + ALIGN)
    for name, data in (("small", small), ("odd", odd), ("large", large), ("again", small)):
        (tmp_path / name).write_bytes(data)
        assert read_direct(tmp_path / name) == (data if direct else None)
    (tmp_path / "empty").write_bytes(b"")
    with ThreadPoolExecutor(1) as fresh:  # a thread with no buffer yet
        assert fresh.submit(read_direct, tmp_path / "empty").result() == (b"" if direct else None)
    with pytest.raises(FileNotFoundError):
        read_direct(tmp_path / "missing")


def test_aligned_ranges_are_written_in_place_and_nothing_else_is(
    tmp_path: Path, direct: bool
) -> None:
    path = tmp_path / "volume"
    before = os.urandom(3 * BLOCK)
    path.write_bytes(before)  # through the cache: a direct write must replace those pages
    block = os.urandom(BLOCK)
    assert pwrite_direct(path, block, BLOCK) == direct
    expected = before[:BLOCK] + block + before[2 * BLOCK :] if direct else before
    assert path.read_bytes() == expected  # read through the cache: the direct bytes
    for data, offset in ((block, 100), (block[:5000], 0), (b"", 0)):  # unaligned or empty
        assert not pwrite_direct(path, data, offset)
    assert path.read_bytes() == expected
    with pytest.raises(FileNotFoundError):
        pwrite_direct(tmp_path / "missing", block, 0)


def test_ranges_are_read_past_the_page_cache_short_at_the_end(tmp_path: Path, direct: bool) -> None:
    path = tmp_path / "volume"
    data = os.urandom(2 * BLOCK + 5000)
    path.write_bytes(data)  # dirty in the cache: a direct read must see these bytes
    expected = {(0, BLOCK): data[:BLOCK], (BLOCK, BLOCK): data[BLOCK : 2 * BLOCK]}
    expected[(2 * BLOCK, BLOCK)] = data[2 * BLOCK :]  # the file ends within the block
    expected[(3 * BLOCK, BLOCK)] = b""  # past its end
    for (offset, length), want in expected.items():
        got = pread_direct(path, offset, length)
        assert (None if got is None else bytes(got)) == (want if direct else None)
    assert pread_direct(path, 100, BLOCK) is None  # an unaligned offset: nothing read
