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
from typing import Any

import httpx

from cascade.errors import CascadeError


def password_auth(
    user: str, password: str, project: str | None = None, domain: str = "default"
) -> dict[str, Any]:
    """A Keystone ``POST /auth/tokens`` body: password method, optionally project-scoped."""
    auth: dict[str, Any] = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": user, "domain": {"id": domain}, "password": password}},
        }
    }
    if project is not None:
        auth["scope"] = {"project": {"name": project, "domain": {"id": domain}}}
    return {"auth": auth}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedCascade:
    def __init__(
        self,
        data_dir: Path,
        admin_password: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.admin_password = admin_password
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = log_file or data_dir / "cascade-up.log"
        self._env = {**os.environ, **(env or {}), "CASCADE_PORT": str(self.port)}
        self._process: subprocess.Popen[bytes] | None = None

    def initialize(self) -> None:
        """``cascade init`` in a child with the same environment as the server."""
        env = {**self._env, "CASCADE_ADMIN_PASSWORD": self.admin_password}
        command = [sys.executable, "-m", "cascade", "init", "--data-dir", str(self.data_dir)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise CascadeError(f"cascade init failed: {done.stderr.strip()}")

    def start(self, timeout: float = 30.0) -> None:
        self.initialize()
        command = [
            sys.executable,
            "-m",
            "cascade",
            "up",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
        ]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                command, env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_healthy(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise CascadeError(f"cascade up exited early; see {self.log_file}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise CascadeError(f"cascade up did not become healthy in {timeout:.0f} s")

    def wait(self) -> None:
        if self._process is not None:
            self._process.wait()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedCascade:
        self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()
