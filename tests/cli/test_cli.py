"""The ``cascade`` command: init is safe to repeat, keys are private, errors are one line
(bad input, a missing, empty or broken data dir, a busy port), and the catalog lists
Cascade's identity where the server is reached (checked with the real ``openstack`` CLI)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cascade.cli.embedded import EmbeddedCascade, free_port
from cascade.db.migrate import head

OPENSTACK = Path(sys.executable).parent / "openstack"
PASSWORD = "catalog-admin-password"


def cascade(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``cascade`` (a command that should have ended serves until killed at ``timeout``)."""
    return subprocess.run(
        [sys.executable, "-m", "cascade", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CASCADE_PASSWORD_HASH_ROUNDS": "4", **(env or {})},
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("cascade: ")
    assert fragment in lines[0]


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
        (("init", "--public-url", "not a url"), {}, "public_url"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], fragment: str
) -> None:
    given = list(args)
    if args[0] == "init":
        given += ["--data-dir", str(tmp_path)]
    assert_one_line_error(cascade(*given, env=env), fragment)


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir ``cascade init`` made, copied by the tests that break it."""
    data = tmp_path_factory.mktemp("template") / "data"
    done = cascade("init", "--data-dir", str(data), env={"CASCADE_ADMIN_PASSWORD": PASSWORD})
    assert done.returncode == 0, done.stderr
    return data


def _broken(kind: str, data: Path, template: Path) -> None:
    """Make ``data`` a data dir of the given kind."""
    if kind == "empty":
        data.mkdir()
    elif kind == "file":
        data.write_text("not a directory")
    elif kind != "missing":
        shutil.copytree(template, data)
    if kind == "bad-db":
        (data / "cascade.db").write_text("not a database")
    elif kind == "no-keys":
        for key in (data / "fernet-keys").iterdir():
            key.unlink()
    elif kind == "bad-key":
        (data / "fernet-keys" / "1").write_text("garbage")
    elif kind == "bad-toml":
        (data / "cascade.toml").write_text("port = [")


@pytest.mark.parametrize(
    ("kind", "command", "fragment"),
    [
        ("missing", "db upgrade", "is not initialised (it does not exist)"),
        ("missing", "up", "is not initialised (it does not exist)"),
        ("missing", "status", "not initialised"),
        ("empty", "db upgrade", "not initialised (no fernet-keys, credential.key, cascade.db)"),
        ("empty", "up", "not initialised (no fernet-keys"),
        ("empty", "status", "not initialised"),
        ("file", "init", "File exists"),
        ("file", "db upgrade", "is not a directory"),
        ("file", "up", "is not a directory"),
        ("bad-db", "db upgrade", "database error: file is not a database"),
        ("bad-db", "up", "database error: file is not a database"),
        ("bad-db", "status", "database error: file is not a database"),
        ("no-keys", "up", "holds no keys"),
        ("bad-key", "up", "malformed Fernet key in"),
        ("bad-toml", "init", "cascade.toml: Invalid value"),
        ("bad-toml", "db upgrade", "not valid TOML"),
        ("bad-toml", "up", "not valid TOML"),
    ],
)
def test_a_missing_or_broken_data_dir_is_one_line(
    tmp_path: Path, initialised: Path, kind: str, command: str, fragment: str
) -> None:
    data = tmp_path / "data"
    _broken(kind, data, initialised)
    port = ["--port", str(free_port())] if command == "up" else []
    done = cascade(*command.split(), "--data-dir", str(data), *port, timeout=30)
    assert_one_line_error(done, fragment)
    assert done.stdout == ""


def test_a_busy_port_is_one_line_before_anything_starts(tmp_path: Path, initialised: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(initialised, data)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = cascade("up", "--data-dir", str(data), "--port", str(port), "--workers", "1")
    assert_one_line_error(done, f"cannot listen on 127.0.0.1:{port}: Address already in use")
    assert done.stdout == ""  # no banner, no catalog change announced
    assert not (data / "logs").exists()  # no worker was started


class UpOnly(EmbeddedCascade):
    """``cascade up`` on a data dir the test initialised itself (with other settings)."""

    def prepare(self) -> None:
        """Nothing: ``cascade init`` ran before, as the test wanted it."""


def openstack(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``openstack`` CLI as Cascade's admin, logging in at ``url``."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("OS_")}
    return subprocess.run(
        [
            str(OPENSTACK),
            "--os-auth-url",
            f"{url}/identity/v3",
            "--os-identity-api-version",
            "3",
            "--os-username",
            "admin",
            "--os-password",
            PASSWORD,
            "--os-project-name",
            "admin",
            "--os-user-domain-name",
            "Default",
            "--os-project-domain-name",
            "Default",
            *args,
        ],
        capture_output=True,
        text=True,
        env=clean,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("how", ["port", "env-public-url", "init-public-url"])
@pytest.mark.timeout(180)
def test_the_catalog_follows_where_the_server_is_reached(tmp_path: Path, how: str) -> None:
    data, port = tmp_path / "d", free_port()
    public = f"http://localhost:{port}"
    init_args = ["--public-url", public] if how == "init-public-url" else []
    done = cascade(
        "init", "--data-dir", str(data), *init_args, env={"CASCADE_ADMIN_PASSWORD": PASSWORD}
    )
    assert done.returncode == 0, done.stderr
    env = {"CASCADE_PUBLIC_URL": public} if how == "env-public-url" else {}
    expected = (f"http://127.0.0.1:{port}" if how == "port" else public) + "/identity/v3"
    with UpOnly(data, PASSWORD, port=port, env=env) as server:
        projects = openstack(server.url, "project", "list", "-f", "value", "-c", "Name")
        assert projects.returncode == 0, projects.stderr
        assert "admin" in projects.stdout.split()
        catalog = openstack(server.url, "catalog", "list", "-f", "json")
        assert catalog.returncode == 0, catalog.stderr
        assert expected in catalog.stdout
        assert ":5000" not in catalog.stdout
    moved = [line for line in server.log_file.read_text().splitlines() if "catalog:" in line]
    if how == "init-public-url":
        assert moved == []  # init listed it already, and up remembered it
    else:
        assert moved == [
            f"catalog: identity endpoint of region RegionOne is now {expected} "
            "(was http://127.0.0.1:5000/identity/v3)"
        ]


def test_init_public_url_is_remembered_beside_other_settings(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "cascade.toml").write_text('region = "Paris"\npublic_url = "http://old:1"\n')
    for url in ("https://cascade.example", "https://cascade.example:8443/api"):
        done = cascade("init", "--data-dir", str(data), "--public-url", url)
        assert done.returncode == 0, done.stderr
        assert f"identity      {url}/identity/v3 (in the catalog)" in done.stdout
    settings = (data / "cascade.toml").read_text().splitlines()
    assert settings == ['region = "Paris"', 'public_url = "https://cascade.example:8443/api"']


def test_ctrl_c_while_the_command_starts_is_one_line(tmp_path: Path) -> None:
    """SIGINT during the command's imports: exit 130 and one line, no traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cascade", "status", "--data-dir", str(tmp_path)],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.3)  # well inside the imports, which take over a second
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert stderr.strip() == "cascade: interrupted"
