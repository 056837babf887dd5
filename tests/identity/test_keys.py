"""The Fernet key repository behaves like keystone-manage fernet_setup / fernet_rotate."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from cascade.identity.keys import KeyRepository, KeyRepositoryError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _names(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()}


def test_setup_creates_staged_and_primary_keys(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path / "fernet-keys")
    assert not repo.exists()
    repo.setup()
    assert repo.exists()
    assert _names(repo.path) == {"0", "1"}
    for key in repo.read_all().values():
        Fernet(key)


def test_setup_twice_keeps_the_keys(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path / "fernet-keys")
    repo.setup()
    before = repo.read_all()
    repo.setup()
    assert repo.read_all() == before


def test_directory_and_key_file_modes(tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        repo = KeyRepository(tmp_path / "fernet-keys")
        repo.setup()
        repo.rotate()
    finally:
        os.umask(old_umask)
    assert _mode(repo.path) == 0o700
    assert {_mode(p) for p in repo.path.iterdir()} == {0o600}


def test_setup_tightens_an_existing_open_directory(tmp_path: Path) -> None:
    path = tmp_path / "fernet-keys"
    path.mkdir(mode=0o755)
    path.chmod(0o755)
    KeyRepository(path).setup()
    assert _mode(path) == 0o700


def test_key_file_is_private_before_it_is_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real_replace = os.replace

    def spy(src: str | Path, dst: str | Path) -> None:
        seen.append(_mode(Path(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    old_umask = os.umask(0)
    try:
        KeyRepository(tmp_path / "fernet-keys").write_key(5, Fernet.generate_key())
    finally:
        os.umask(old_umask)
    assert seen == [0o600]


def test_write_key_leaves_no_temporary_files(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path / "fernet-keys")
    key = Fernet.generate_key()
    repo.write_key(7, key)
    repo.write_key(7, key)
    assert _names(repo.path) == {"7"}
    assert repo.read_all() == {7: key}


def test_write_key_rejects_bad_key_without_echoing_it(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path / "fernet-keys")
    with pytest.raises(ValueError, match="Fernet key") as caught:
        repo.write_key(1, b"sekrit-not-a-key")
    assert "sekrit" not in str(caught.value)
    with pytest.raises(ValueError, match="non-negative"):
        repo.write_key(-1, Fernet.generate_key())


def test_rotate_promotes_staged_key_and_stages_a_new_one(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path / "fernet-keys")
    repo.setup()
    staged = repo.read_all()[0]
    assert repo.rotate() == 2
    after = repo.read_all()
    assert sorted(after) == [0, 1, 2]
    assert after[2] == staged
    assert after[0] not in (staged, after[1])


def test_rotate_purges_oldest_secondaries(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path / "fernet-keys")
    repo.setup()
    repo.rotate(max_active_keys=3)
    assert repo.rotate(max_active_keys=3) == 3
    assert _names(repo.path) == {"0", "2", "3"}
    assert repo.rotate(max_active_keys=5) == 4
    assert repo.rotate(max_active_keys=5) == 5
    assert _names(repo.path) == {"0", "2", "3", "4", "5"}
    assert repo.rotate(max_active_keys=2) == 6
    assert _names(repo.path) == {"0", "6"}


def test_rotate_needs_room_for_staged_and_primary(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path / "fernet-keys")
    repo.setup()
    with pytest.raises(ValueError, match="max_active_keys"):
        repo.rotate(max_active_keys=1)


def test_rotate_without_staged_key_fails(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path / "fernet-keys")
    repo.write_key(3, Fernet.generate_key())
    with pytest.raises(KeyRepositoryError, match="staged"):
        repo.rotate()


def test_keys_are_in_multifernet_order(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path / "fernet-keys")
    by_number = {number: Fernet.generate_key() for number in (0, 2, 10, 9)}
    for number, key in by_number.items():
        repo.write_key(number, key)
    assert repo.keys() == [by_number[10], by_number[9], by_number[2], by_number[0]]


def test_read_all_ignores_foreign_and_empty_files(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path / "fernet-keys")
    repo.setup()
    (repo.path / "README").write_text("not a key")
    (repo.path / "0.tmp").write_text("half a key")
    (repo.path / "01").write_text("not canonical")
    (repo.path / "4").write_bytes(b"")
    assert sorted(repo.read_all()) == [0, 1]


def test_read_all_accepts_trailing_newline(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path / "fernet-keys")
    repo.path.mkdir()
    key = Fernet.generate_key()
    (repo.path / "1").write_bytes(key + b"\n")
    assert repo.read_all() == {1: key}


def test_missing_repository_is_an_error(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path / "absent")
    assert not repo.exists()
    with pytest.raises(KeyRepositoryError, match="does not exist"):
        repo.keys()


def test_empty_repository_is_an_error(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path)
    assert not repo.exists()
    with pytest.raises(KeyRepositoryError, match="holds no keys"):
        repo.read_all()


def test_malformed_key_file_is_named_but_not_echoed(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path / "fernet-keys")
    repo.setup()
    (repo.path / "1").write_text("sekrit-material")
    with pytest.raises(KeyRepositoryError) as caught:
        repo.keys()
    message = str(caught.value)
    assert str(repo.path / "1") in message
    assert "sekrit" not in message


def test_held_keys_follow_a_change_within_one_clock_tick(tmp_path: Path) -> None:
    """A set replaced within one tick of the clock that stamps files (the directory's mtime
    then stays the same) is still seen by a reader that looked before."""
    repo = KeyRepository(tmp_path / "keys")
    repo.setup()
    before_id, _ = repo.held()
    directory = repo.path.stat()
    repo.write_key(0, Fernet.generate_key())
    os.utime(repo.path, ns=(directory.st_atime_ns, directory.st_mtime_ns))
    after_id, keys = repo.held()
    assert after_id != before_id
    assert keys == repo.read_all()
