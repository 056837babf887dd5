"""Observability without a worker: the engine's Prometheus metrics, ``/v1/cluster``,
``/v1/convergence`` and the ``cascade op list|show|wait`` and ``cascade status`` commands, on
operations left queued (no worker runs here) or finished by hand in the database."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from cascade.api.app import create_app
from cascade.cli.main import app as cli
from cascade.config import Settings
from cascade.db.models import ConvergencePass, Operation, OperationStep, Worker, utcnow
from cascade.engine.metrics import COLLECTOR
from cascade.services import Services
from tests.conftest import make_settings, make_tenant

ENGINE_METRICS = (
    "cascade_queue_depth",
    "cascade_operations",
    "cascade_worker_heartbeat_age_seconds",
    "cascade_worker_alive",
    "cascade_operation_duration_seconds",
    "cascade_convergence_last_pass_timestamp_seconds",
)


def submit_probe(client: TestClient, token: str) -> str:
    response = client.post("/v1/probes", headers={"X-Auth-Token": token})
    assert response.status_code == 202, response.text
    return str(response.json()["operation"]["id"])


def finish(services: Services, operation_id: str, took: float, error: str | None = None) -> None:
    """End an operation by hand, as a worker would, ``took`` seconds after it was accepted."""
    with services.db.session() as session:
        operation = session.get(Operation, operation_id)
        assert operation is not None
        operation.status = "failed" if error else "succeeded"
        operation.error = error
        operation.started_at = operation.created_at
        operation.finished_at = operation.created_at + timedelta(seconds=took)


def add_worker(services: Services, executor_id: str, silent_for: float) -> None:
    now = utcnow()
    with services.db.session() as session:
        session.add(
            Worker(
                executor_id=executor_id,
                host="host-1",
                pid=4242,
                state="alive",
                started_at=now - timedelta(seconds=600),
                heartbeat_at=now - timedelta(seconds=silent_for),
            )
        )


def add_pass(services: Services, pass_id: str) -> ConvergencePass:
    now = utcnow()
    record = ConvergencePass(
        id=pass_id,
        scheduled_for=now,
        executor_id="w-conv",
        status="succeeded",
        checked=4,
        repairs=[
            {
                "resource": {"type": "server", "id": "s-1"},
                "site": "site-a",
                "drift": "deleted at the site",
                "action": "recreated",
            }
        ],
        started_at=now,
        finished_at=now + timedelta(seconds=1),
    )
    with services.db.session() as session:
        session.add(record)
    return record


def scrape(client: TestClient, token: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    response = client.get("/metrics", headers={"X-Auth-Token": token})
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_count_queued_operations(client: TestClient, admin_token: str) -> None:
    text = client.get("/metrics", headers={"X-Auth-Token": admin_token}).text
    for name in ENGINE_METRICS:
        assert f"# TYPE {name} " in text, name
    samples = scrape(client, admin_token)
    assert sample(samples, "cascade_queue_depth", queue="cascade-operations") == 0
    assert sample(samples, "cascade_operations", status="queued") == 0
    submit_probe(client, admin_token)
    samples = scrape(client, admin_token)
    assert sample(samples, "cascade_queue_depth", queue="cascade-operations") == 1
    assert sample(samples, "cascade_queue_depth", queue="cascade-site-calls") == 0
    assert sample(samples, "cascade_operations", status="queued") == 1
    assert sample(samples, "cascade_operations", status="running") == 0
    assert sample(samples, "cascade_engine_metrics_up") == 1
    submit_probe(client, admin_token)
    samples = scrape(client, admin_token)
    assert sample(samples, "cascade_queue_depth", queue="cascade-operations") == 2
    assert sample(samples, "cascade_operations", status="queued") == 2


def test_collector_reads_the_newest_open_app(
    client: TestClient, services: Services, tmp_path: Path
) -> None:
    assert COLLECTOR.current() is services
    other = Services(make_settings(tmp_path / "other"))
    with TestClient(create_app(other)):
        assert COLLECTOR.current() is other
    assert COLLECTOR.current() is services


def test_a_failed_read_keeps_metrics_up(
    client: TestClient, admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_services: Services) -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr("cascade.engine.metrics.cluster_status", broken)
    samples = scrape(client, admin_token)
    assert sample(samples, "cascade_engine_metrics_up") == 0
    assert not any(name == "cascade_queue_depth" for name, _labels in samples)


def test_operation_duration_histogram(
    client: TestClient, admin_token: str, services: Services
) -> None:
    finish(services, submit_probe(client, admin_token), took=2.0)
    finish(services, submit_probe(client, admin_token), took=0.2, error="boom")
    samples = scrape(client, admin_token)
    kind = "engine.probe"
    name = "cascade_operation_duration_seconds"
    assert sample(samples, f"{name}_count", kind=kind) == 2
    assert sample(samples, f"{name}_sum", kind=kind) == pytest.approx(2.2, abs=0.01)
    assert sample(samples, f"{name}_bucket", kind=kind, le="0.1") == 0
    assert sample(samples, f"{name}_bucket", kind=kind, le="0.25") == 1
    assert sample(samples, f"{name}_bucket", kind=kind, le="2.5") == 2
    assert sample(samples, f"{name}_bucket", kind=kind, le="+Inf") == 2
    assert sample(samples, "cascade_operations", status="queued") == 0


def test_cluster_shows_workers_and_their_heartbeat_age(
    client: TestClient, admin_token: str, services: Services
) -> None:
    add_worker(services, "w-old", silent_for=90)
    response = client.get("/v1/cluster", headers={"X-Auth-Token": admin_token})
    assert response.status_code == 200, response.text
    body = response.json()
    [worker] = [w for w in body["workers"] if w["executor_id"] == "w-old"]
    assert worker["state"] == "alive"
    assert worker["host"] == "host-1"
    assert 90 <= worker["heartbeat_age_s"] < 120
    assert body["queue_depth"] == dict.fromkeys(
        ("cascade-operations", "cascade-site-calls", "cascade-transfers"), 0
    )
    assert body["in_flight"] == {"queued": 0, "running": 0}
    assert body["last_convergence"] is None
    assert worker["live"] is False  # its row says alive, its heart stopped 90 s ago
    add_worker(services, "w-new", silent_for=0)
    samples = scrape(client, admin_token)
    age = sample(samples, "cascade_worker_heartbeat_age_seconds", executor_id="w-old")
    assert 90 <= age < 120
    assert sample(samples, "cascade_worker_heartbeat_age_seconds", executor_id="w-new") < 30
    assert sample(samples, "cascade_worker_alive", executor_id="w-old") == 0
    assert sample(samples, "cascade_worker_alive", executor_id="w-new") == 1


def test_cluster_and_convergence_are_for_admins(client: TestClient, admin_token: str) -> None:
    tenant = make_tenant(client, admin_token, "member")
    refused = client.get("/v1/cluster", headers=tenant.headers)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == 403
    assert client.get("/v1/cluster").status_code == 401
    assert client.get("/v1/convergence", headers=tenant.headers).status_code == 403
    assert client.get("/v1/convergence").status_code == 401


def test_convergence_lists_passes_and_their_repairs(
    client: TestClient, admin_token: str, services: Services
) -> None:
    record = add_pass(services, "pass-1")
    headers = {"X-Auth-Token": admin_token}
    response = client.get("/v1/convergence", params={"limit": 5}, headers=headers)
    assert response.status_code == 200, response.text
    [shown] = response.json()["passes"]
    assert shown["id"] == "pass-1"
    assert shown["checked"] == 4
    assert shown["repairs"][0]["action"] == "recreated"
    assert shown["repairs"][0]["resource"] == {"type": "server", "id": "s-1"}
    assert client.get("/v1/convergence", params={"limit": 0}, headers=headers).status_code == 400
    cluster = client.get("/v1/cluster", headers=headers).json()
    assert cluster["last_convergence"]["id"] == "pass-1"
    samples = scrape(client, admin_token)
    assert sample(samples, "cascade_convergence_last_pass_timestamp_seconds") == pytest.approx(
        record.started_at.timestamp(), abs=0.001
    )


def test_op_list_show_and_wait_timeout(
    client: TestClient, admin_token: str, services: Services, settings: Settings
) -> None:
    runner = CliRunner()
    data_dir = ["--data-dir", str(settings.data_dir)]
    queued = submit_probe(client, admin_token)
    done = submit_probe(client, admin_token)
    finish(services, done, took=1.5)

    listed = runner.invoke(cli, ["op", "list", *data_dir])
    assert listed.exit_code == 0, listed.output
    assert queued in listed.output
    assert done in listed.output
    only_done = runner.invoke(cli, ["op", "list", "--status", "succeeded", *data_dir])
    assert done in only_done.output
    assert queued not in only_done.output

    shown = runner.invoke(cli, ["op", "show", queued, *data_dir])
    assert shown.exit_code == 0, shown.output
    assert queued in shown.output
    assert "engine.probe" in shown.output
    assert "queued" in shown.output

    waited = runner.invoke(cli, ["op", "wait", queued, "--timeout", "1", *data_dir])
    assert waited.exit_code == 2, waited.output
    assert f"operation {queued} still queued after 1.0 s: no worker is alive" in waited.output
    add_worker(services, "w-serving", silent_for=0)
    served = runner.invoke(cli, ["op", "wait", queued, "--timeout", "1", *data_dir])
    assert served.exit_code == 2, served.output
    assert f"operation {queued} still queued after 1.0 s" in served.output
    assert "no worker is alive" not in served.output
    succeeded = runner.invoke(cli, ["op", "wait", done, *data_dir])
    assert succeeded.exit_code == 0, succeeded.output
    assert f"operation {done} succeeded" in succeeded.output


def test_status_shows_the_cluster(services: Services, settings: Settings) -> None:
    add_worker(services, "w-status", silent_for=5)
    add_pass(services, "pass-status")
    shown = CliRunner().invoke(cli, ["status", "--data-dir", str(settings.data_dir)])
    assert shown.exit_code == 0, shown.output
    assert "w-status" in shown.output
    assert "cascade-operations 0" in shown.output
    assert "0 queued, 0 running" in shown.output
    assert "pass-status" in shown.output
    assert "repairs 1" in shown.output


def cascade(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cascade", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CASCADE_PASSWORD_HASH_ROUNDS": "4"},
        timeout=120,
        check=False,
    )


def test_op_errors_are_one_line(
    client: TestClient, admin_token: str, services: Services, settings: Settings
) -> None:
    data_dir = ("--data-dir", str(settings.data_dir))
    missing = cascade("op", "show", "nope", *data_dir)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == ["cascade: Could not find operation: nope."]

    failed = submit_probe(client, admin_token)
    finish(services, failed, took=0.5, error="site-a down:\n  connection refused")
    waited = cascade("op", "wait", failed, *data_dir)
    assert waited.returncode == 1
    assert waited.stderr.strip().splitlines() == [
        f"cascade: operation {failed} failed: site-a down: connection refused"
    ]


def add_steps(services: Services, operation_id: str, *outcomes: str | None) -> None:
    """Steps of an operation as a worker records them: None succeeded, a text failed."""
    now = utcnow()
    with services.db.session() as session:
        for index, error in enumerate(outcomes):
            session.add(
                OperationStep(
                    operation_id=operation_id,
                    name=f"step {index}",
                    site="site-a",
                    status="failed" if error else "succeeded",
                    attempts=1,
                    error=error,
                    started_at=now,
                    finished_at=now,
                )
            )


def test_op_wait_shows_failed_steps_as_failed(
    client: TestClient, admin_token: str, services: Services, settings: Settings
) -> None:
    failed = submit_probe(client, admin_token)
    add_steps(services, failed, None, "site-a: create failed")
    finish(services, failed, took=0.5, error="site-a: create failed")
    waited = cascade("op", "wait", failed, "--data-dir", str(settings.data_dir))
    assert waited.returncode == 1
    assert "1/2 steps succeeded, 1 failed" in waited.stdout, waited.stdout
    assert "2/2" not in waited.stdout

    ok = submit_probe(client, admin_token)
    add_steps(services, ok, None, None)
    finish(services, ok, took=0.5)
    waited = cascade("op", "wait", ok, "--data-dir", str(settings.data_dir))
    assert waited.returncode == 0, waited.stderr
    assert "2/2 steps succeeded" in waited.stdout
    assert "failed" not in waited.stdout


def test_a_pass_left_running_by_a_gone_worker_is_not_shown_running(
    client: TestClient, admin_token: str, services: Services, settings: Settings
) -> None:
    add_worker(services, "w-conv", silent_for=600)  # died; nobody declared it dead
    record = add_pass(services, "pass-orphan")
    with services.db.session() as session:
        orphan = session.get(ConvergencePass, record.id)
        assert orphan is not None
        orphan.status, orphan.finished_at = "running", None
    headers = {"X-Auth-Token": admin_token}

    last = client.get("/v1/cluster", headers=headers).json()["last_convergence"]
    assert last["status"] == "interrupted", last
    assert "w-conv is gone" in last["note"]
    shown = CliRunner().invoke(cli, ["status", "--data-dir", str(settings.data_dir)])
    assert "pass-orphan interrupted" in shown.output, shown.output
    assert "0 alive of 1 known" in shown.output
    assert "silent" in shown.output

    # Declared dead and its work taken over by a live worker: running, resumed by that one.
    add_worker(services, "w-heir", silent_for=0)
    with services.db.session() as session:
        gone = session.get(Worker, "w-conv")
        assert gone is not None
        gone.state, gone.recovered_by = "recovered", "w-heir"
    last = client.get("/v1/cluster", headers=headers).json()["last_convergence"]
    assert last["status"] == "running", last
    assert last["note"] == "worker w-conv is gone; resumed by w-heir"
    shown = CliRunner().invoke(cli, ["status", "--data-dir", str(settings.data_dir)])
    assert "pass-orphan running (worker w-conv is gone; resumed by w-heir)" in shown.output
