"""A worker stops promptly whatever it waits on: SIGINT or SIGTERM while a registered site is
down (its calls retrying to a long deadline, a keypair's parent workflow waiting on its child,
a convergence pass at that site) ends the real ``cascade worker`` process within a generous
bound, prints no traceback, and the operations it was running are not lost: another worker
resumes them and finishes them once the site is back."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cascade.db.models import ConvergencePass, OperationStep
from cascade.replication.keypairs import fingerprint
from cascade.retry import Backoff, Interrupted, until_deadline
from cascade.services import Services
from tests.engine.conftest import (
    WorkerFactory,
    at_site,
    create_server,
    public_key,
    register,
    start_site,
    wait_operation,
)

STOP_BOUND = 5.0  # seconds; the product aims at 2 s, the test allows a loaded machine


def _wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _site_call_running(services: Services, operation_id: str) -> bool:
    with services.db.session() as session:
        step = session.scalar(
            select(OperationStep).where(
                OperationStep.operation_id == operation_id, OperationStep.status == "running"
            )
        )
        return step is not None


def _pass_started(services: Services) -> bool:
    with services.db.session() as session:
        return session.scalar(select(ConvergencePass.id).limit(1)) is not None


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_a_worker_waiting_on_a_down_site(
    signum: signal.Signals,
    tmp_path: Path,
    client: TestClient,
    admin_token: str,
    services: Services,
    start_worker: WorkerFactory,
) -> None:
    site = start_site("down-site", tmp_path)
    try:
        register(client, admin_token, site)
        site.stop()  # the port is closed now: every call to the site is refused
        worker = start_worker(
            "w-stop", CASCADE_SITE_CALL_DEADLINE="120", CASCADE_CONVERGENCE_INTERVAL="1"
        )
        accepted = create_server(client, admin_token, "interrupted", site="down-site")
        operation_id = accepted["operation"]["id"]
        key = public_key()
        keypair = client.post(
            "/v1/keypairs",
            headers={"X-Auth-Token": admin_token},
            json={"name": "interrupted", "public_key": key},
        )
        assert keypair.status_code == 202, keypair.text
        fanned = keypair.json()["operation"]["id"]  # a parent waiting on a child workflow
        _wait_for(lambda: _site_call_running(services, operation_id), 30, "the site call")
        _wait_for(lambda: _site_call_running(services, fanned), 30, "the fanned-out call")
        _wait_for(lambda: _pass_started(services), 30, "a convergence pass")
        time.sleep(1.0)  # let both retry against the closed port

        pid = worker.pid
        assert pid is not None
        started = time.monotonic()
        os.kill(pid, signum)
        worker.wait()
        took = time.monotonic() - started
        print(f"worker stopped {took:.2f} s after {signum.name}")
        log = worker.log_file.read_text()
        assert took < STOP_BOUND, f"worker took {took:.1f} s to stop:\n{log}"
        assert "Traceback" not in log, log
        assert "DBOSException" not in log, log

        # Nothing is lost: with the site back, another worker resumes and finishes the create.
        site.start()
        start_worker("w-resume")
        done = wait_operation(client, admin_token, operation_id, timeout=90)
        assert done["status"] == "succeeded", done
        assert done["executor_id"] == "w-resume", done
        imported = wait_operation(client, admin_token, fanned, timeout=90)
        assert imported["status"] == "succeeded", imported
        assert at_site(site, "interrupted") == fingerprint(key)
    finally:
        site.stop()


def test_a_stop_ends_retries_to_a_deadline_at_once() -> None:
    """The driver's retry with the worker's stop event: no attempt after the stop, and the
    wait between attempts is cut short (Interrupted, not the call's failure)."""
    stop = threading.Event()
    attempts: list[float] = []

    def refused() -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 3:
            threading.Timer(0.2, stop.set).start()
        raise ConnectionRefusedError("closed port")

    started = time.monotonic()
    with pytest.raises(Interrupted):
        until_deadline(Backoff(first=1.0, cap=30.0), 600.0, lambda _e: True, refused, stop)
    assert len(attempts) == 3  # the stop came during the wait after the third
    assert time.monotonic() - started < 60, "the stop did not cut the wait short"
