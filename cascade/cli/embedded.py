"""An embedded Cascade: initialise a data dir and serve it from a child ``cascade up`` process.

Used by ``cascade demo``, ``cascade bench`` and the tests; the child is always stopped on exit.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session

from cascade.db import Database
from cascade.db.models import Worker
from cascade.errors import CascadeError, present
from cascade.sites.driver import SiteAccess

# Readiness probes of the children: unauthenticated GETs (version documents, /v1/health).
_PROBE = ks_session.Session()


def stop_process(
    process: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float = 10
) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within ``grace`` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ChildServer:
    """A ``cascade`` subcommand serving HTTP in a child process, stopped on exit (even on
    failure). Subclasses say which command and which URL answers 200 once it is ready."""

    health_path = "/"
    name = "server"
    launcher: tuple[str, ...] = ()  # what the command runs under, e.g. ("ip", "netns", "exec", NS)

    def __init__(
        self, data_dir: Path, port: int | None, env: dict[str, str] | None, log_file: Path | None
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = log_file or data_dir.parent / f"{data_dir.name}.log"
        self._env = {**os.environ, **(env or {})}
        self._process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Work done before the child starts (nothing by default)."""

    def start(self, timeout: float = 90.0) -> None:
        """Start the child and wait until it answers (it ends the wait early if the child
        exits; a loaded machine may take a minute to import and migrate)."""
        self.prepare()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [*self.launcher, sys.executable, "-m", "cascade", *self.command()],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_healthy(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        process = present(self._process, f"{self.name}'s process")
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise CascadeError(
                    f"{self.name} exited early (code {process.returncode}): "
                    f"{self._last_log_line()} (log: {self.log_file})"
                )
            if self.is_ready():
                return
            time.sleep(0.1)
        self.stop()
        raise CascadeError(f"{self.name} did not become ready in {timeout:.0f} s")

    def _last_log_line(self) -> str:
        """The child's last words, so an early exit explains itself where it is reported."""
        lines = self.log_file.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else "nothing logged"

    def is_ready(self) -> bool:
        try:
            answer = _PROBE.get(self.url + self.health_path, raise_exc=False, timeout=1)
        except ks_exceptions.ClientException:  # refused, reset, timed out
            return False
        return bool(answer.status_code == 200)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def wait(self) -> None:
        if self._process is not None:
            self._process.wait()

    def kill(self) -> None:
        """SIGKILL, for tests of what survives a crash."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedCascade(ChildServer):
    """``cascade init`` then ``cascade up`` on a data dir."""

    health_path = "/v1/health"
    name = "cascade up"

    def __init__(
        self,
        data_dir: Path,
        admin_password: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        log_file: Path | None = None,
        workers: int = 0,
    ) -> None:
        super().__init__(data_dir, port, env, log_file or data_dir / "cascade-up.log")
        self.admin_password = admin_password
        self.workers = workers
        self._env["CASCADE_PORT"] = str(self.port)

    def prepare(self) -> None:
        """``cascade init`` in a child with the same environment as the server."""
        env = {**self._env, "CASCADE_ADMIN_PASSWORD": self.admin_password}
        command = [sys.executable, "-m", "cascade", "init", "--data-dir", str(self.data_dir)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise CascadeError(f"cascade init failed: {done.stderr.strip()}")

    def command(self) -> list[str]:
        return [
            "up",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]


class EmbeddedReplica(ChildServer):
    """``cascade identity-replica`` following a master, on its own data dir."""

    health_path = "/v1/health"
    name = "cascade identity-replica"

    def __init__(
        self,
        data_dir: Path,
        master_url: str,
        master_password: str,
        port: int | None = None,
        region: str | None = None,
    ) -> None:
        env = {"CASCADE_MASTER_PASSWORD": master_password}
        super().__init__(data_dir, port, env, data_dir.parent / f"{data_dir.name}.log")
        self.master_url = master_url
        self.region = region

    def command(self) -> list[str]:
        return [
            "identity-replica",
            "--master",
            self.master_url,
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            *(["--region", self.region] if self.region else []),
        ]


class EmbeddedSite(ChildServer):
    """``cascade site-sim``: one emulated region."""

    health_path = "/identity/v3"
    name = "cascade site-sim"

    def __init__(
        self,
        name: str,
        data_dir: Path,
        admin_password: str,
        port: int | None = None,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        region: str | None = None,
    ) -> None:
        super().__init__(data_dir, port, env, None)
        self.site_name = name
        self.region = region or name
        self.admin_password = admin_password
        self.args = ["--region", self.region, *(args or [])]
        self._env["CASCADE_SITE_ADMIN_PASSWORD"] = admin_password

    def command(self) -> list[str]:
        return [
            "site-sim",
            "--name",
            self.site_name,
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            *self.args,
        ]

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity/v3"

    def access(self) -> SiteAccess:
        """How the site driver reaches this site as its admin."""
        return SiteAccess(
            name=self.site_name,
            region=self.region,
            auth_url=self.auth_url,
            username="admin",
            password=self.admin_password,
            project_name="admin",
        )


class EmbeddedWorker(ChildServer):
    """``cascade worker`` on an initialised data dir; ready once its heartbeat is in the
    database. Restarting it keeps its executor id, as ``cascade up --workers`` does."""

    name = "cascade worker"

    def __init__(
        self,
        data_dir: Path,
        executor_id: str,
        database: Database,
        env: dict[str, str] | None = None,
        log_file: Path | None = None,
    ) -> None:
        super().__init__(data_dir, None, env, log_file or data_dir / f"worker-{executor_id}.log")
        self.executor_id = executor_id
        self._database = database

    def command(self) -> list[str]:
        return ["worker", "--data-dir", str(self.data_dir), "--executor-id", self.executor_id]

    def is_ready(self) -> bool:
        with self._database.session() as session:
            worker = session.get(Worker, self.executor_id)
            return worker is not None and worker.pid == self.pid and worker.state == "alive"
