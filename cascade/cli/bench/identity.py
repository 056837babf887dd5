"""``cascade bench identity``: token issue and validation over HTTP on loopback.

Starts its own embedded Cascade, drives it from separate client processes (one keep-alive
connection each) and measures, in the same run, in-process baselines (bcrypt at the same cost,
raw Fernet+msgpack, Cascade's token formatter) so results can be quoted as ratios.
Validation and token-method issue are timed through the raw ``KeepAliveConnection``
(keystoneauth1 would cap them, ``cascade bench clients``); password issue, bound by bcrypt,
and the login go through keystoneauth1. With ``--json`` the last line of output is one JSON
object.
"""

from __future__ import annotations

import json
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any

import msgpack
import typer
from cryptography.fernet import Fernet
from keystoneauth1 import session as ks_session
from rich.console import Console
from rich.table import Table

from cascade.cli.bench.http import RAW_LOOPS, connect, per_second, percentile
from cascade.cli.clients import login, password_auth_plugin, token
from cascade.cli.embedded import EmbeddedCascade
from cascade.errors import present
from cascade.identity.keys import KeyRepository
from cascade.identity.passwords import hash_password, verify_password
from cascade.identity.render import password_auth
from cascade.identity.token_format import TokenFormatter, TokenPayload, new_audit_id

console = Console(stderr=False)
PREPARED_PER_S = 6000  # more requests than one connection can send in a second
PASSWORD = "bench-admin-password"  # noqa: S105 - a throwaway server's password


@dataclass(frozen=True)
class Target:
    port: int
    admin_token: str
    user_id: str
    project_id: str
    key_repository: str


@dataclass(frozen=True)
class Phase:
    name: str
    connections: int
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: int) -> float:
        return percentile(self.latencies_ms, q)


def _password_body() -> bytes:
    return json.dumps(password_auth("admin", PASSWORD, "admin")).encode()


def _rescope_body(token: str) -> bytes:
    return json.dumps(
        {
            "auth": {
                "identity": {"methods": ["token"], "token": {"id": token}},
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
            }
        }
    ).encode()


def client_loop(
    kind: str, target: Target, seconds: float, raw: bool | None = None
) -> tuple[list[float], int, float]:
    """One client process: one keep-alive connection (raw for ``RAW_LOOPS`` unless ``raw``
    says otherwise), requests back to back for ``seconds``. Requests (fresh tokens included)
    are prepared before the clock starts."""
    formatter = TokenFormatter(KeyRepository(Path(target.key_repository)))
    prepared = [_request(kind, target, formatter) for _ in range(int(seconds * PREPARED_PER_S))]
    connection = connect(target.port, kind in RAW_LOOPS if raw is None else raw)
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + seconds
    for method, path, body, headers, expected in prepared:
        if time.perf_counter() >= deadline:
            break
        sent = time.perf_counter()
        status = connection.request(method, path, headers, body or b"").status
        latencies.append((time.perf_counter() - sent) * 1000)
        errors += status != expected
    elapsed = time.perf_counter() - started
    connection.close()
    return latencies, errors, elapsed


def _fresh_token(formatter: TokenFormatter, target: Target) -> str:
    """A token the server has never seen, for the admin on the admin project."""
    return formatter.create(
        TokenPayload(
            user_id=target.user_id,
            methods=("password",),
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            audit_ids=(new_audit_id(),),
            project_id=target.project_id,
        )
    )


def _request(
    kind: str, target: Target, formatter: TokenFormatter
) -> tuple[str, str, bytes | None, dict[str, str], int]:
    json_headers = {"Content-Type": "application/json"}
    path = "/identity/v3/auth/tokens"
    if kind == "issue":
        return "POST", path, _password_body(), json_headers, 201
    if kind == "rescope":
        return "POST", path, _rescope_body(target.admin_token), json_headers, 201
    headers = {
        "X-Auth-Token": target.admin_token,
        "X-Subject-Token": _fresh_token(formatter, target),
    }
    return "GET", path, None, headers, 200


def _phase(name: str, kind: str, target: Target, connections: int, seconds: float) -> Phase:
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(connections, mp_context=context) as pool:
        futures = [pool.submit(client_loop, kind, target, seconds) for _ in range(connections)]
        results = [future.result() for future in futures]
    latencies = [value for found, _, _ in results for value in found]
    elapsed = max(seconds_taken for _, _, seconds_taken in results)
    return Phase(
        name,
        connections,
        len(latencies),
        elapsed,
        latencies,
        sum(errors for _, errors, _ in results),
    )


def _baselines(target: Target, rounds: int, seconds: float) -> dict[str, float]:
    fernet = Fernet(Fernet.generate_key())
    raw = fernet.encrypt(msgpack.packb((2, b"x" * 16, 2, b"y" * 16, 1.7e9, [b"z" * 16])))
    formatter = TokenFormatter(KeyRepository(Path(target.key_repository)))
    token = _fresh_token(formatter, target)
    stored = hash_password(PASSWORD, rounds)
    return {
        "fernet_msgpack_per_s": per_second(lambda: msgpack.unpackb(fernet.decrypt(raw)), seconds),
        "formatter_validate_per_s": per_second(lambda: formatter.validate(token), seconds),
        "bcrypt_verify_per_s": per_second(lambda: verify_password(PASSWORD, stored), seconds),
    }


def phase_table(
    title: str, first: str, phases: list[Phase], label: Callable[[Phase], str] = attrgetter("name")
) -> Table:
    """One row per phase: rate, percentiles and errors, the first column ``label(phase)``."""
    table = Table(
        first, "connections", "requests", "per second", "p50 ms", "p99 ms", "errors", title=title
    )
    for phase in phases:
        table.add_row(
            label(phase),
            str(phase.connections),
            str(phase.requests),
            f"{phase.per_s:,.1f}",
            f"{phase.percentile(50):.2f}",
            f"{phase.percentile(99):.2f}",
            str(phase.errors),
        )
    return table


def phase_figures(phases: list[Phase]) -> dict[str, Any]:
    """Rate, p50, p99 and errors of each phase, keyed by its name (and connections if > 1)."""
    figures: dict[str, Any] = {}
    for phase in phases:
        key = f"{phase.name}_per_s" + (
            "" if phase.connections == 1 else f"_{phase.connections}conn"
        )
        figures[key] = round(phase.per_s, 1)
        figures[key.replace("per_s", "p50_ms")] = round(phase.percentile(50), 3)
        figures[key.replace("per_s", "p99_ms")] = round(phase.percentile(99), 3)
        figures[key.replace("per_s", "errors")] = phase.errors
    return figures


def admin_login(session: ks_session.Session) -> tuple[str, str, str]:
    """The token, user id and project id of a logged-in keystoneauth1 session."""
    user_id = present(session.get_user_id(), "the session's user id")
    return token(session), user_id, present(session.get_project_id(), "the session's project")


def _report(phases: list[Phase], baselines: dict[str, float], rounds: int) -> dict[str, Any]:
    console.print(phase_table("cascade bench identity (HTTP on loopback)", "phase", phases))
    base = Table("in-process baseline", "per second", title="same run, one core")
    for name, value in baselines.items():
        base.add_row(name, f"{value:,.0f}")
    console.print(base)
    by_name = {(p.name, p.connections): p for p in phases}
    figures: dict[str, Any] = {"password_hash": f"bcrypt cost {rounds}"}
    figures.update(phase_figures(phases))
    figures.update({k: round(v, 1) for k, v in baselines.items()})
    validate = by_name.get(("validate", 1))
    if validate:
        figures["validate_vs_formatter_ratio"] = round(
            validate.per_s / baselines["formatter_validate_per_s"], 4
        )
    return figures


def identity(
    seconds: Annotated[float, typer.Option(min=0.5, help="Seconds per phase")] = 5.0,
    rounds: Annotated[int, typer.Option(min=4, max=16, help="bcrypt cost")] = 12,
    connections: Annotated[int, typer.Option(min=2, max=64, help="Concurrent clients")] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="Print figures as JSON last")] = False,
    replica: Annotated[
        bool,
        typer.Option(
            "--replica",
            help="Replica mode instead: validation at a `cascade identity-replica` process vs "
            "the master on the same unseen tokens, the time until a write at the master is "
            "visible at 1 replica process and at N simulated replicas (followers long-polling "
            "the master from threads of this process), and real Keystone 30 on the same "
            "machine (cache off and on) when the keystone package is installed",
        ),
    ] = False,
    replicas: Annotated[
        str, typer.Option(help="--replica: replica counts for visibility (1 = the process)")
    ] = "1,10,100",
    changes: Annotated[
        int, typer.Option(min=1, help="--replica: writes timed per replica count")
    ] = 5,
    with_keystone: Annotated[
        bool, typer.Option("--keystone/--no-keystone", help="--replica: measure real Keystone")
    ] = True,
    rotations: Annotated[
        int,
        typer.Option(
            min=0,
            help="--replica: Fernet key rotations timed with up to 10 simulated replicas "
            "(the largest --replicas count <= 10, else 10) and the replica process; 0: none",
        ),
    ] = 3,
) -> None:
    """Tokens issued and validated per second over HTTP, 1 and N connections; with
    --replica, validation at a site replica, change visibility at 1-100 replicas and real
    Keystone for comparison."""
    if replica:
        _replica_mode(
            seconds, rounds, connections, replicas, changes, with_keystone, rotations, as_json
        )
        return
    with tempfile.TemporaryDirectory(prefix="cascade-bench-") as temporary:
        data_dir = Path(temporary)
        env = {"CASCADE_PASSWORD_HASH_ROUNDS": str(rounds), "CASCADE_LOG_LEVEL": "warning"}
        with EmbeddedCascade(data_dir, PASSWORD, env=env) as cascade:
            session = login(password_auth_plugin(f"{cascade.url}/identity/v3", PASSWORD))
            admin, user_id, project_id = admin_login(session)
            target = Target(cascade.port, admin, user_id, project_id, str(data_dir / "fernet-keys"))
            phases = []
            plan = [
                ("issue", 1),
                ("issue", connections),
                ("rescope", 1),
                ("validate", 1),
                ("validate", connections),
            ]
            for kind, count in plan:
                console.print(f"running {kind} with {count} connection(s) for {seconds:g} s")
                phases.append(_phase(kind, kind, target, count, seconds))
            baselines = _baselines(target, rounds, min(seconds, 2.0))
    figures = _report(phases, baselines, rounds)
    if as_json:
        print(json.dumps(figures))


def _replica_mode(
    seconds: float,
    rounds: int,
    connections: int,
    replicas: str,
    changes: int,
    with_keystone: bool,
    rotations: int,
    as_json: bool,
) -> None:
    from cascade.cli.bench import identity_replica

    try:
        sizes = sorted({int(size) for size in replicas.split(",") if size.strip()})
    except ValueError:
        raise typer.BadParameter(
            "a comma-separated list of counts", param_hint="--replicas"
        ) from None
    if not sizes or min(sizes) < 1:
        raise typer.BadParameter("counts of at least 1", param_hint="--replicas")
    with tempfile.TemporaryDirectory(prefix="cascade-bench-replica-") as temporary:
        env = {"CASCADE_PASSWORD_HASH_ROUNDS": str(rounds), "CASCADE_LOG_LEVEL": "warning"}
        figures = identity_replica.run(
            Path(temporary),
            PASSWORD,
            env,
            seconds,
            connections,
            sizes,
            changes,
            with_keystone,
            console,
            rotations,
        )
    if as_json:
        print(json.dumps(figures))
