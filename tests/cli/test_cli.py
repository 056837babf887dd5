"""The ``cascade`` command: init is safe to repeat, keys are private, errors are one line."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cascade.db.migrate import head


def cascade(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cascade", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CASCADE_PASSWORD_HASH_ROUNDS": "4", **(env or {})},
        timeout=120,
        check=False,
    )


def test_init_twice_is_safe_and_keys_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = cascade("init", "--data-dir", str(data))
    assert first.returncode == 0, first.stderr
    assert "password:" in first.stdout
    second = cascade("init", "--data-dir", str(data))
    assert second.returncode == 0, second.stderr
    assert "already bootstrapped" in second.stdout
    assert "password:" not in second.stdout
    keys = data / "fernet-keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    names = sorted(p.name for p in keys.iterdir())
    assert names == ["0", "1"]
    for path in [*keys.iterdir(), data / "credential.key"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    upgraded = cascade("db", "upgrade", "--data-dir", str(data))
    assert upgraded.returncode == 0
    assert f"revision {head()}" in upgraded.stdout


def test_admin_password_from_environment(tmp_path: Path) -> None:
    done = cascade("init", "--data-dir", str(tmp_path), env={"CASCADE_ADMIN_PASSWORD": "given"})
    assert done.returncode == 0
    assert "password as given" in done.stdout
    assert "given" not in done.stdout.replace("password as given", "")


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (("no-such-command",), {}, "No such command"),
        (("up", "--port", "notaport"), {}, "--port"),
        (("init",), {"CASCADE_PASSWORD_HASH_ROUNDS": "99"}, "password_hash_rounds"),
        (("init",), {"CASCADE_DATABASE_URL": "mysql://x/y"}, "unsupported database"),
        (("up", "--data-dir", "/nonexistent/cascade"), {}, "not initialised"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], fragment: str
) -> None:
    given = list(args)
    if args[0] == "init":
        given += ["--data-dir", str(tmp_path)]
    done = cascade(*given, env=env)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("cascade: ")
    assert fragment in lines[0]
    assert "Traceback" not in done.stderr
