"""Real Keystone (the ``keystone`` package, 30.x, the ``interop`` extra) served on loopback, so
``cascade bench identity --replica`` can measure it on the same machine in the same run.

A temp dir holds its ``keystone.conf`` (SQLite, Fernet tokens, the dogpile in-memory cache on
or off), its database and key repository; ``keystone-manage db_sync``, ``fernet_setup`` and
``bootstrap`` prepare it, then a child process serves Keystone's WSGI app
(``keystone.server.flask.core.initialize_application``) with the standard library's WSGI
server, one thread: one keep-alive connection is what is measured. Run as
``python -m cascade.cli.bench.keystone CONFIG PORT`` for the child.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Self

from keystoneauth1 import session as ks_session

from cascade.cli.bench.http import connect
from cascade.cli.clients import SessionClient, login, password_auth_plugin, token
from cascade.cli.embedded import free_port, stop_process
from cascade.errors import CascadeError

PASSWORD = "bench-keystone-password"  # noqa: S105 - a throwaway server's password
MANAGE = "import sys; from keystone.cmd.manage import main; sys.argv[0] = 'keystone-manage'; main()"


def unavailable() -> str | None:
    """Why real Keystone cannot be run here, or None when it can."""
    if importlib.util.find_spec("keystone") is None:
        return "the keystone package is not installed (pip install 'cascade[interop]')"
    return None


def _config(root: Path, cached: bool) -> str:
    return f"""[DEFAULT]
debug = false
use_stderr = true
log_file = {root / "keystone.log"}

[database]
connection = sqlite:///{root / "keystone.db"}

[token]
provider = fernet
caching = {str(cached).lower()}

[fernet_tokens]
key_repository = {root / "fernet-keys"}

[fernet_receipts]
key_repository = {root / "fernet-receipts"}

[identity]
password_hash_algorithm = bcrypt
password_hash_rounds = 4

[cache]
enabled = {str(cached).lower()}
backend = dogpile.cache.memory
"""


class KeystoneServer:
    """A prepared Keystone in a temp dir, served by a child process until exit."""

    def __init__(self, cached: bool, timeout: float = 90.0) -> None:
        self.cached = cached
        self.timeout = timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self._temp = tempfile.TemporaryDirectory(prefix="cascade-bench-keystone-")
        try:
            self._start(Path(self._temp.name))
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _start(self, root: Path) -> None:
        config = root / "keystone.conf"
        config.write_text(_config(root, self.cached))
        ids = [str(os.getuid()), str(os.getgid())]
        for step in (
            ["db_sync"],
            ["fernet_setup", "--keystone-user", ids[0], "--keystone-group", ids[1]],
            ["bootstrap", "--bootstrap-password", PASSWORD],
        ):
            self._manage(config, step)
        with (root / "server.log").open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "cascade.cli.bench.keystone", str(config), str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.timeout
        versions = SessionClient(ks_session.Session(timeout=2), self.url)
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise CascadeError(f"keystone exited early: {_tail(root / 'server.log')}")
            with suppress(CascadeError):  # not listening yet
                if versions.request("GET", "/v3").status == 200:
                    return
            time.sleep(0.2)
        raise CascadeError(f"keystone did not answer in {self.timeout:.0f} s")

    def _manage(self, config: Path, step: list[str]) -> None:
        command = [sys.executable, "-c", MANAGE, "--config-file", str(config), *step]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise CascadeError(f"keystone-manage {step[0]} failed: {done.stderr[-2000:]}")

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"


def validations_per_s(server: KeystoneServer, seconds: float, raw: bool = False) -> float:
    """Validations per second of one password-issued token at ``server``, repeated over one
    keep-alive connection for ``seconds`` (at least 3 requests however slow it is): through
    keystoneauth1, or the raw client, which waits for a delayed ACK on every answer this
    server writes in two pieces (``cascade bench clients`` compares them)."""
    admin = token(login(password_auth_plugin(f"{server.url}/v3", PASSWORD)))
    connection = connect(server.port, raw)
    headers = {"X-Auth-Token": admin, "X-Subject-Token": admin}
    count = 0
    started = time.perf_counter()
    while count < 3 or time.perf_counter() - started < seconds:
        reply = connection.request("GET", "/v3/auth/tokens", headers)
        if reply.status != 200:
            raise CascadeError(f"keystone answered {reply.status}: {reply.body[:200]!r}")
        count += 1
    elapsed = time.perf_counter() - started
    connection.close()
    return count / elapsed


def serve(config: str, port: int) -> None:
    """The child: Keystone's WSGI app on the standard library's WSGI server, one thread,
    taught to keep a connection open (it answers one request per connection otherwise)."""
    import warnings
    from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, make_server

    with warnings.catch_warnings():  # Keystone pulls in eventlet, which warns on import
        warnings.simplefilter("ignore")
        from keystone.server.flask import core  # type: ignore[import-untyped]

    class KeepAlive(WSGIRequestHandler):
        def handle(self) -> None:
            while True:
                self.raw_requestline = self.rfile.readline(65537)
                if not self.raw_requestline or not self.parse_request():
                    return
                handler = ServerHandler(
                    self.rfile,
                    self.wfile,  # type: ignore[arg-type]
                    self.get_stderr(),
                    self.get_environ(),
                )
                handler.request_handler = self  # type: ignore[attr-defined]
                handler.run(self.server.get_app())  # type: ignore[attr-defined]

        def log_request(self, *_args: object, **_kwargs: object) -> None:
            pass

    sys.argv[1:] = []  # Keystone parses the command line too
    app = core.initialize_application("public", config_files=[config])
    make_server("127.0.0.1", port, app, handler_class=KeepAlive).serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
