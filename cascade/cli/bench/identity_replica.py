"""``cascade bench identity --replica``: what a site's identity replica gives.

- Validation at a real ``cascade identity-replica`` process over HTTP (1 and N keep-alive
  connections), on tokens neither it nor the master has seen (minted with the master's keys),
  and the master's rate on the very same tokens, for the ratio.
- Change visibility: the time from a write at the master (a user created) until it is
  visible at 1 replica (the real process answers ``GET /users/{id}``), and until 10 and 100
  simulated replicas have all applied it. A simulated replica is a real ``Follower`` (its
  own SQLite database, key repository and node key, bootstrapped from the master's snapshot)
  long-polling the master over HTTP from its own thread, as ``cascade identity-replica``
  does; only the password login is replaced by one shared admin token (no 100 bcrypt hashes).
- Real Keystone 30 on the same machine, one connection, its cache off and on, when the
  ``keystone`` package is importable (``cascade.cli.bench.keystone``).
"""

from __future__ import annotations

import random
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from cascade.cli.bench import keystone
from cascade.cli.bench.http import KeepAliveConnection
from cascade.cli.bench.identity import Phase, login, phase_figures
from cascade.cli.embedded import EmbeddedCascade, EmbeddedReplica
from cascade.db import Database
from cascade.db.migrate import upgrade
from cascade.identity.follower import Follower, Master
from cascade.identity.keys import KeyRepository
from cascade.identity.sealing import NodeKey
from cascade.identity.token_format import TokenFormatter, TokenPayload, new_audit_id

TOKENS = "/identity/v3/auth/tokens"
PREPARED_PER_S = 6000  # tokens minted per second of a one-connection phase


class Measured:
    """Requests over one keep-alive connection, in a client process."""

    def __init__(self, latencies_ms: list[float], errors: int, seconds: float) -> None:
        self.latencies_ms, self.errors, self.seconds = latencies_ms, errors, seconds


def _validate_loop(
    port: int, admin_token: str, tokens: list[str], seconds: float
) -> tuple[list[float], int, float]:
    """Validate ``tokens`` in order (each once) until they run out or ``seconds`` pass."""
    connection = KeepAliveConnection(port)
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + seconds
    for token in tokens:
        if time.perf_counter() >= deadline:
            break
        sent = time.perf_counter()
        status = connection.request(
            "GET", TOKENS, {"X-Auth-Token": admin_token, "X-Subject-Token": token}
        ).status
        latencies.append((time.perf_counter() - sent) * 1000)
        errors += status != 200
    elapsed = time.perf_counter() - started
    connection.close()
    return latencies, errors, elapsed


def mint(key_repository: Path, user_id: str, project_id: str, count: int) -> list[str]:
    """``count`` distinct project tokens for the admin, never seen by any server."""
    formatter = TokenFormatter(KeyRepository(key_repository))
    expires_at = datetime.now(UTC) + timedelta(hours=1)
    return [
        formatter.create(
            TokenPayload(
                user_id=user_id,
                methods=("password",),
                expires_at=expires_at,
                audit_ids=(new_audit_id(),),
                project_id=project_id,
            )
        )
        for _ in range(count)
    ]


def validate(port: int, admin_token: str, pools: list[list[str]], seconds: float) -> Measured:
    """One client process per pool, all at once, each on its own connection."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(len(pools), mp_context=context) as executor:
        futures = [
            executor.submit(_validate_loop, port, admin_token, pool, seconds) for pool in pools
        ]
        results = [future.result() for future in futures]
    return Measured(
        [value for found, _, _ in results for value in found],
        sum(errors for _, errors, _ in results),
        max(elapsed for _, _, elapsed in results),
    )


# --- change visibility ------------------------------------------------------------------


class _Writer:
    """Writes at the master (a user created per change, without a password so the write is
    not a bcrypt hash) and reads its change log head."""

    def __init__(self, port: int, admin_token: str) -> None:
        self._connection = KeepAliveConnection(port)
        self._token = admin_token
        self._count = 0

    def create_user(self) -> str:
        self._count += 1
        name = f"bench-visible-{self._count}-{random.getrandbits(32):08x}"
        body = {"user": {"name": name, "domain_id": "default"}}  # no password: no bcrypt
        reply = self._connection.json(
            "POST", "/identity/v3/users", self._token, body=body, expect=201
        )
        return str(reply.json()["user"]["id"])

    def head(self) -> int:
        reply = self._connection.json(
            "GET", "/identity-replica/v1/changes?limit=1&after=0", self._token
        )
        return int(reply.json()["head"])

    def close(self) -> None:
        self._connection.close()


def visible_at_process(
    master_port: int, replica_port: int, admin_token: str, changes: int
) -> list[float]:
    """Seconds from a user created at the master until the replica process serves it."""
    writer = _Writer(master_port, admin_token)
    reader = KeepAliveConnection(replica_port)
    headers = {"X-Auth-Token": admin_token}
    found = []
    try:
        for _ in range(changes):
            time.sleep(random.uniform(0.1, 0.3))  # land anywhere in the master's poll cycle
            started = time.perf_counter()
            user_id = writer.create_user()
            deadline = started + 30
            while reader.request("GET", f"/identity/v3/users/{user_id}", headers).status != 200:
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"user {user_id} not visible at the replica in 30 s")
            found.append(time.perf_counter() - started)
    finally:
        writer.close()
        reader.close()
    return found


class _Simulated(Follower):
    """A follower that logs in with a shared token and notes when it applied each change."""

    def __init__(self, root: Path, template: Path, master: Master, token: str) -> None:
        root.mkdir(parents=True)
        shutil.copyfile(template, root / "cascade.db")
        super().__init__(
            Database(f"sqlite:///{root / 'cascade.db'}"),
            KeyRepository(root / "fernet-keys"),
            NodeKey(root / "node.key"),
            master,
            f"bench-{root.name}",
            http=httpx.Client(base_url=master.url, timeout=70),
        )
        self._shared_token = token
        self.applied: dict[int, float] = {}  # last seq of a batch -> when it committed
        self.changed = threading.Event()

    def _login(self) -> str:
        return self._shared_token

    def _record(self, changes: list[dict[str, Any]], head: int) -> None:
        super()._record(changes, head)
        if changes:
            self.applied[int(changes[-1]["seq"])] = time.perf_counter()
            self.changed.set()

    def reached(self, seq: int) -> float | None:
        """When this replica's position first reached ``seq``."""
        times = [at for applied, at in self.applied.items() if applied >= seq]
        return min(times) if times else None


@contextmanager
def simulated_replicas(
    root: Path, master_url: str, password: str, token: str, count: int
) -> Iterator[list[_Simulated]]:
    """``count`` followers of the master, each in its own thread, bootstrapped and long-polling;
    stopped (and their threads joined) on exit."""
    template = root / "template.db"
    root.mkdir(parents=True, exist_ok=True)
    schema = Database(f"sqlite:///{template}")
    upgrade(schema)  # migrate once, copy the file: each replica still has its own database
    schema.dispose()
    master = Master(master_url, "admin", password)
    followers = [_Simulated(root / f"r{i:03d}", template, master, token) for i in range(count)]
    stop = threading.Event()
    threads = [
        threading.Thread(target=f.run, args=(stop,), name=f.name, daemon=True) for f in followers
    ]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while any(f.position() is None for f in followers):
            if time.monotonic() > deadline:
                raise TimeoutError("simulated replicas did not bootstrap in 120 s")
            time.sleep(0.1)
        time.sleep(0.5)  # each is now in its long poll
        yield followers
    finally:
        stop.set()
        try:  # a change ends every long poll at once, so the threads see ``stop``
            with httpx.Client(base_url=master_url, timeout=10) as client:
                client.post(
                    "/identity/v3/users",
                    json={
                        "user": {
                            "name": f"bench-stop-{random.getrandbits(32):08x}",
                            "domain_id": "default",
                        }
                    },
                    headers={"X-Auth-Token": token},
                )
        except httpx.HTTPError:
            pass
        for thread in threads:
            thread.join(timeout=15)
        for follower in followers:
            follower.db.dispose()


def visible_at_simulated(
    followers: list[_Simulated], master_port: int, admin_token: str, changes: int
) -> list[float]:
    """Seconds from a user created at the master until every follower applied it."""
    writer = _Writer(master_port, admin_token)
    found = []
    try:
        for _ in range(changes):
            time.sleep(random.uniform(0.1, 0.3))
            started = time.perf_counter()
            writer.create_user()
            seq = writer.head()
            deadline = started + 30
            while True:
                reached = [f.reached(seq) for f in followers]
                if all(at is not None for at in reached):
                    break
                if time.perf_counter() > deadline:
                    missing = sum(at is None for at in reached)
                    raise TimeoutError(f"{missing} replicas did not apply seq {seq} in 30 s")
                time.sleep(0.005)
            found.append(max(at for at in reached if at is not None) - started)
    finally:
        writer.close()
    return found


# --- real Keystone ----------------------------------------------------------------------


def keystone_rate(cached: bool, seconds: float, note: Callable[[str], None]) -> float:
    """Validations per second of one password-issued token at a real Keystone, repeated over
    one keep-alive connection (at least 3 requests however slow it is)."""
    with keystone.KeystoneServer(cached) as server:
        note(f"keystone (cache {'on' if cached else 'off'}) up on port {server.port}")
        connection = KeepAliveConnection(server.port)
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": "admin",
                            "domain": {"id": "default"},
                            "password": keystone.PASSWORD,
                        }
                    },
                },
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
            }
        }
        token = connection.json("POST", "/v3/auth/tokens", body=body, expect=201).headers[
            "x-subject-token"
        ]
        headers = {"X-Auth-Token": token, "X-Subject-Token": token}
        count = 0
        started = time.perf_counter()
        while count < 3 or time.perf_counter() - started < seconds:
            reply = connection.request("GET", "/v3/auth/tokens", headers)
            if reply.status != 200:
                raise RuntimeError(f"keystone answered {reply.status}: {reply.body[:200]!r}")
            count += 1
        elapsed = time.perf_counter() - started
        connection.close()
    return count / elapsed


# --- the run ----------------------------------------------------------------------------


def _stats(prefix: str, values: list[float], figures: dict[str, Any]) -> None:
    figures[f"{prefix}_p50_s"] = round(statistics.median(values), 4)
    figures[f"{prefix}_max_s"] = round(max(values), 4)


def run(
    root: Path,
    password: str,
    env: dict[str, str],
    seconds: float,
    connections: int,
    sizes: list[int],
    changes: int,
    with_keystone: bool,
    console: Console,
) -> dict[str, Any]:
    """The whole replica mode under ``root``; returns the figures (and prints the tables)."""
    figures: dict[str, Any] = {}
    phases: list[Phase] = []
    visibility: dict[int, list[float]] = {}
    with EmbeddedCascade(root / "master", password, env=env) as master:
        admin, user_id, project_id = login(master.port)
        keys = root / "master" / "fernet-keys"
        with EmbeddedReplica(root / "replica", master.url, password) as replica:
            _until_valid(replica.port, admin)
            per_pool = int(seconds * PREPARED_PER_S)
            shared = mint(keys, user_id, project_id, per_pool)
            plan = [
                ("validate", master.port, [shared]),
                ("replica_validate", replica.port, [shared]),
                (
                    "replica_validate",
                    replica.port,
                    [mint(keys, user_id, project_id, per_pool) for _ in range(connections)],
                ),
            ]
            for name, port, pools in plan:
                console.print(f"running {name} with {len(pools)} connection(s) for {seconds:g} s")
                done = validate(port, admin, pools, seconds)
                count = len(done.latencies_ms)
                phases.append(
                    Phase(name, len(pools), count, done.seconds, done.latencies_ms, done.errors)
                )
            if 1 in sizes:
                console.print(f"visibility at 1 replica process, {changes} changes")
                visibility[1] = visible_at_process(master.port, replica.port, admin, changes)
        for size in sorted(s for s in sizes if s > 1):
            console.print(f"starting {size} simulated replicas")
            with simulated_replicas(
                root / f"sim-{size}", master.url, password, admin, size
            ) as followers:
                console.print(f"visibility at {size} simulated replicas, {changes} changes")
                visibility[size] = visible_at_simulated(followers, master.port, admin, changes)
    figures.update(phase_figures(phases))
    if figures.get("validate_per_s"):
        figures["replica_vs_master_validate_ratio"] = round(
            figures["replica_validate_per_s"] / figures["validate_per_s"], 3
        )
    for size, values in visibility.items():
        _stats(f"visible_{size}_replica{'s' if size > 1 else ''}", values, figures)
    figures["visibility_changes"] = changes
    if with_keystone:
        why = keystone.unavailable()
        if why:
            console.print(f"real Keystone not measured: {why}")
        else:
            for cached, key in (
                (False, "keystone_validate_per_s"),
                (True, "keystone_validate_cached_per_s"),
            ):
                console.print(f"running real Keystone 30, cache {'on' if cached else 'off'}")
                figures[key] = round(keystone_rate(cached, seconds, console.print), 2)
            for ours in ("validate_per_s", "replica_validate_per_s"):
                for key in ("keystone_validate_per_s", "keystone_validate_cached_per_s"):
                    if figures.get(key) and ours in figures:
                        name = f"{ours.removesuffix('_per_s')}_vs_{key.removesuffix('_per_s')}"
                        figures[f"{name}_ratio"] = round(figures[ours] / figures[key], 1)
    _print(console, phases, visibility, figures)
    return figures


def _until_valid(port: int, admin: str, timeout: float = 60.0) -> None:
    """Wait until the replica bootstrapped (it validates the master's admin token)."""
    deadline = time.monotonic() + timeout
    headers = {"X-Auth-Token": admin, "X-Subject-Token": admin}
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{TOKENS}", headers=headers).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the replica did not bootstrap in {timeout:.0f} s")


def _print(
    console: Console,
    phases: list[Phase],
    visibility: dict[int, list[float]],
    figures: dict[str, Any],
) -> None:
    table = Table(
        "where",
        "connections",
        "requests",
        "per second",
        "p50 ms",
        "p99 ms",
        "errors",
        title="token validation, unseen tokens (HTTP on loopback)",
    )
    for phase in phases:
        table.add_row(
            "replica" if phase.name.startswith("replica") else "master",
            str(phase.connections),
            str(phase.requests),
            f"{phase.per_s:,.1f}",
            f"{phase.percentile(50):.2f}",
            f"{phase.percentile(99):.2f}",
            str(phase.errors),
        )
    for key, label in (
        ("keystone_validate_per_s", "keystone 30"),
        ("keystone_validate_cached_per_s", "keystone 30 cached"),
    ):
        if key in figures:
            table.add_row(label, "1", "-", f"{figures[key]:,.2f}", "-", "-", "-")
    console.print(table)
    seen = Table(
        "replicas", "changes", "p50 s", "max s", title="a write at the master until visible"
    )
    for size, values in sorted(visibility.items()):
        kind = "process" if size == 1 else "simulated"
        seen.add_row(
            f"{size} ({kind})",
            str(len(values)),
            f"{statistics.median(values):.3f}",
            f"{max(values):.3f}",
        )
    console.print(seen)
