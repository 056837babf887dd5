"""An S3-compatible server for the S3 chunk store's tests: moto's standalone server
(``python -m moto.server``), a separate process on a free loopback port, speaking the S3
REST protocol over HTTP; stopped (SIGKILL if it lingers) when the fixture ends, even on
failure. Credentials are whatever the environment gives boto3: the fixture sets test ones."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cascade.cli.embedded import free_port, stop_process
from tests.conftest import service_available

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "cascade-test",
    "AWS_SECRET_ACCESS_KEY": "cascade-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    process: subprocess.Popen[bytes]

    def url(self, bucket: str) -> str:
        """The chunk store URL of a bucket there."""
        return f"s3+http://{self.endpoint.removeprefix('http://')}/{bucket}"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with pytest.MonkeyPatch.context() as environment:
            for name, value in CREDENTIALS.items():
                environment.setenv(name, value)
            deadline = time.monotonic() + 60
            while not service_available(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto's S3 server did not listen on 127.0.0.1:{port}")
                time.sleep(0.1)
            yield S3Server(f"http://127.0.0.1:{port}", process)
    finally:
        stop_process(process)
