"""``cascade bench identity --replica``: what a site's identity replica gives.

- Validation at a real ``cascade identity-replica`` process over HTTP (1 and N keep-alive
  connections), on tokens neither it nor the master has seen (minted with the master's keys),
  and the master's rate on the very same tokens, for the ratio.
- Change visibility: the time from a write at the master (a user created) until it is
  visible at 1 replica (the real process), and until 10 and 100 simulated replicas have all
  applied it (``cascade.cli.bench.replica_fleet``).
- Fernet key rotation: R full rotations (staged, installed by every replica, promoted), each
  timed, with the largest simulated fleet of at most 10 replicas asked for (10 if none is)
  following the master, plus the replica process, which is registered too and must hold each
  new set as well; figures ``rotation_{N}_sites_*`` name N, the simulated count. Then tokens
  the master mints with the new primary must validate at the replica process.
- Real Keystone 30 on the same machine, one keystoneauth1 connection, its cache off and on,
  when the ``keystone`` package is importable (``cascade.cli.bench.keystone``).

Validation is timed through the raw keep-alive client (keystoneauth1 would cap it); every
other call goes through keystoneauth1.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cascade.cli.bench import keystone
from cascade.cli.bench.http import KeepAliveConnection, connect
from cascade.cli.bench.identity import Phase, admin_login, phase_figures, phase_table
from cascade.cli.bench.replica_fleet import (
    TOKENS,
    Rotations,
    Simulated,
    check_new_primary,
    rotate_keys,
    simulated_replicas,
    visible_at_process,
    visible_at_simulated,
)
from cascade.cli.clients import Client, SessionClient, login, password_auth_plugin
from cascade.cli.embedded import EmbeddedCascade, EmbeddedReplica
from cascade.errors import CascadeError
from cascade.identity.keys import KeyRepository
from cascade.identity.token_format import TokenFormatter, TokenPayload, new_audit_id

PREPARED_PER_S = 6000  # tokens minted per second of a one-connection phase
ROTATION_FLEET = 10  # rotations run with the largest simulated fleet up to this size


class Measured:
    """Requests over one keep-alive connection, in a client process."""

    def __init__(self, latencies_ms: list[float], errors: int, seconds: float) -> None:
        self.latencies_ms, self.errors, self.seconds = latencies_ms, errors, seconds


def _validate_loop(
    port: int, admin_token: str, tokens: list[str], seconds: float
) -> tuple[list[float], int, float]:
    """Validate ``tokens`` in order (each once) until they run out or ``seconds`` pass, on the
    raw client: validation is one of the ``RAW_LOOPS``."""
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


# --- real Keystone ----------------------------------------------------------------------


def keystone_rate(cached: bool, seconds: float, note: Callable[[str], None]) -> float:
    """Validations per second at a real Keystone, its cache on or off."""
    with keystone.KeystoneServer(cached) as server:
        note(f"keystone (cache {'on' if cached else 'off'}) up on port {server.port}")
        return keystone.validations_per_s(server, seconds)


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
    rotations: int = 3,
) -> dict[str, Any]:
    """The whole replica mode under ``root``; returns the figures (and prints the tables)."""
    figures: dict[str, Any] = {}
    phases: list[Phase] = []
    visibility: dict[int, list[float]] = {}
    fleet = max((s for s in sizes if 1 < s <= ROTATION_FLEET), default=ROTATION_FLEET)
    rotated: Rotations | None = None
    with EmbeddedCascade(root / "master", password, env=env) as master:
        session = login(password_auth_plugin(f"{master.url}/identity/v3", password))
        admin, user_id, project_id = admin_login(session)
        at_master = SessionClient(session, master.url)
        keys = root / "master" / "fernet-keys"
        with EmbeddedReplica(root / "replica", master.url, password) as replica:
            at_replica = connect(replica.port, raw=False)  # explicit tokens: no login there
            _until_valid(at_replica, admin)
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
                visibility[1] = visible_at_process(at_master, at_replica, admin, changes)
            if rotations:  # first of the fleets, with the replica process still up: a
                # rotation waits for every registered replica, stopped ones included
                console.print(f"starting {fleet} simulated replicas")
                with simulated_replicas(
                    root / f"sim-{fleet}", at_master, password, admin, fleet
                ) as followers:
                    if fleet in sizes:
                        visibility[fleet] = _visible(console, followers, at_master, changes)
                    console.print(
                        f"{rotations} key rotation(s), {fleet} simulated replicas + the process"
                    )
                    rotated = rotate_keys(root / "master", fleet, rotations, console.print)
                check_new_primary(rotated, at_master, at_replica, admin, keys)
        for size in sorted(s for s in sizes if s > 1 and s not in visibility):
            console.print(f"starting {size} simulated replicas")
            with simulated_replicas(
                root / f"sim-{size}", at_master, password, admin, size
            ) as followers:
                visibility[size] = _visible(console, followers, at_master, changes)
    figures.update(phase_figures(phases))
    if figures.get("validate_per_s"):
        figures["replica_vs_master_validate_ratio"] = round(
            figures["replica_validate_per_s"] / figures["validate_per_s"], 3
        )
    for size, values in visibility.items():
        _stats(f"visible_{size}_replica{'s' if size > 1 else ''}", values, figures)
    figures["visibility_changes"] = changes
    if rotated is not None:
        figures.update(rotated.figures())
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
    _print(console, phases, visibility, rotated, figures)
    return figures


def _visible(
    console: Console, followers: list[Simulated], master: SessionClient, changes: int
) -> list[float]:
    console.print(f"visibility at {len(followers)} simulated replicas, {changes} changes")
    return visible_at_simulated(followers, master, changes)


def _until_valid(replica: Client, admin: str, timeout: float = 60.0) -> None:
    """Wait until the replica bootstrapped (it validates the master's admin token)."""
    deadline = time.monotonic() + timeout
    headers = {"X-Auth-Token": admin, "X-Subject-Token": admin}
    while time.monotonic() < deadline:
        with suppress(CascadeError):  # not listening yet
            if replica.request("GET", TOKENS, headers).status == 200:
                return
        time.sleep(0.1)
    raise CascadeError(f"the replica did not bootstrap in {timeout:.0f} s")


def _print(
    console: Console,
    phases: list[Phase],
    visibility: dict[int, list[float]],
    rotated: Rotations | None,
    figures: dict[str, Any],
) -> None:
    table = phase_table(
        "token validation, unseen tokens (HTTP on loopback)",
        "where",
        phases,
        lambda phase: "replica" if phase.name.startswith("replica") else "master",
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
    if rotated is not None:
        keys = Table(
            "replicas",
            "rotations",
            "p50 s",
            "max s",
            "held by",
            "new tokens at process",
            title="a Fernet key rotation, from its start until promoted",
        )
        keys.add_row(
            f"{rotated.replicas} simulated + process",
            str(len(rotated.seconds)),
            f"{statistics.median(rotated.seconds):.3f}",
            f"{max(rotated.seconds):.3f}",
            f"{rotated.holding}/{rotated.sites}",
            f"{rotated.tokens - rotated.token_errors}/{rotated.tokens} valid",
        )
        console.print(keys)
