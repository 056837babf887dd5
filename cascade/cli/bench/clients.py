"""``cascade bench clients``: whether a client library would be what a benchmark measures.

Every timed loop of the other benches, run in this process in one run through the raw
``KeepAliveConnection`` and through keystoneauth1 (a ``Session``, whose requests session keeps
the connection alive): token validation (unseen tokens), token-method issue and password
issue at one Cascade; probe submission at its ``/v1`` from the engine bench's client
threads; server create+delete, volume create+delete and port create at a site-sim (a fresh
one for each client and pair, as ``cascade bench site`` starts one); and, with
``--keystone``, validation at one real Keystone with its cache on.

Each loop runs in ``--repeats`` pairs (raw first, then keystoneauth1 first, in turn) and its
ratio is the median of its pairs' ratios, so a shared machine's drift and state that grows as
the loops run weigh on both clients alike. A loop whose keystoneauth1 rate is under
``LIBRARY_BOUND`` of the raw rate would measure the client library as much as the server:
those are the ``RAW_LOOPS``, timed through the raw client; the rest go through keystoneauth1.
With ``--json`` the last line of output is one JSON object.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from keystoneauth1 import session as ks_session
from rich.console import Console
from rich.table import Table

from cascade.cli.bench import engine, identity, keystone, site
from cascade.cli.bench.http import RAW_LOOPS, KeepAliveConnection
from cascade.cli.clients import Client, SessionClient, login, password_auth_plugin
from cascade.cli.embedded import EmbeddedCascade, EmbeddedSite
from cascade.errors import CascadeError

console = Console()
PASSWORD = identity.PASSWORD  # the identity loops' password logins send it
# keystoneauth1 under two thirds of the raw rate: the library would be a third or more of
# each timed request, measured as if it were the server.
LIBRARY_BOUND = 2 / 3
CLIENTS = ("raw", "keystoneauth")
Rates = dict[str, dict[str, list[float]]]  # loop -> client -> rate of each round


def _identity_loops(target: identity.Target, seconds: float, repeats: int, rates: Rates) -> None:
    for kind in ("validate", "rescope", "issue"):
        for repeat in range(repeats):
            for client in _order(repeat):
                console.print(f"{kind} through {client} for {seconds:g} s")
                latencies, errors, elapsed = identity.client_loop(
                    kind, target, seconds, raw=client == "raw"
                )
                _check(kind, errors)
                rates.setdefault(kind, {}).setdefault(client, []).append(len(latencies) / elapsed)


def _submit_loop(
    connect: dict[str, Callable[[], Client]], probes: int, repeats: int, rates: Rates
) -> None:
    """``probes`` operations submitted from the engine bench's client threads (no worker runs
    them: what is timed is the API accepting them)."""
    for repeat in range(repeats):
        for client in _order(repeat):
            console.print(f"submit {probes} probes through {client}")
            started = time.perf_counter()
            engine.in_parallel(connect[client], [("/v1/probes", None)] * probes, engine.submit)
            rate = probes / (time.perf_counter() - started)
            rates.setdefault("submit_probes", {}).setdefault(client, []).append(rate)


def _site_loops(root: Path, seconds: float, repeats: int, rates: Rates) -> None:
    """The site bench's loops, each client of each pair on a fresh site-sim as that bench
    runs them: a sim's server creates slow down as ports accumulate (290/s fresh, 81/s after
    ~1,000 ports here), which would weigh on whichever client came later."""
    args = ["--build-seconds", "0", "--hosts", "4"]
    for repeat in range(repeats):
        for client in _order(repeat):
            name = f"site-{repeat}-{client}"
            with EmbeddedSite(name, root / name, PASSWORD, args=args) as sim:
                admin = site.SiteClient(sim.port, PASSWORD)
                ids = site.fixtures(admin)
                console.print(f"site API loops through {client} for {seconds:g} s each")
                used: Client = admin.http
                if client == "raw":
                    used = KeepAliveConnection(sim.port, admin.token)
                for key, rate in site.api_rates(used, *ids, seconds).items():
                    loop = key.removesuffix("_calls_per_s")
                    rates.setdefault(loop, {}).setdefault(client, []).append(rate)
                used.close()


def _keystone_loop(seconds: float, repeats: int, rates: Rates) -> None:
    with keystone.KeystoneServer(cached=True) as server:
        for repeat in range(repeats):
            for client in _order(repeat):
                console.print(f"keystone (cache on) validation through {client}")
                rate = keystone.validations_per_s(server, seconds, raw=client == "raw")
                rates.setdefault("keystone_validate_cached", {}).setdefault(client, []).append(rate)


def _order(repeat: int) -> tuple[str, ...]:
    """Raw first, then keystoneauth1 first, in turn: what grows as a loop runs (a site's
    allocations, a database) weighs on both clients alike."""
    return CLIENTS if repeat % 2 == 0 else CLIENTS[::-1]


def _check(loop: str, errors: int) -> None:
    if errors:
        raise CascadeError(f"{loop}: {errors} requests answered an unexpected status")


def _figures(rates: Rates) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for loop, by_client in rates.items():
        raw = statistics.median(by_client["raw"])
        library = statistics.median(by_client["keystoneauth"])
        pairs = [b / a for a, b in zip(by_client["raw"], by_client["keystoneauth"], strict=True)]
        figures[f"{loop}_raw_per_s"] = round(raw, 1)
        figures[f"{loop}_keystoneauth_per_s"] = round(library, 1)
        figures[f"{loop}_ratio"] = round(statistics.median(pairs), 3)
        figures[f"{loop}_ratio_range"] = [round(min(pairs), 3), round(max(pairs), 3)]
        figures[f"{loop}_added_ms"] = round((1 / library - 1 / raw) * 1000, 3)
        figures[f"{loop}_benches_use"] = "raw" if loop in RAW_LOOPS else "keystoneauth"
    return figures


def _report(rates: Rates, figures: dict[str, Any]) -> None:
    table = Table(
        "loop",
        "raw /s",
        "keystoneauth1 /s",
        "ratio (range)",
        "added ms/request",
        "benches use",
        title="the same loops through both clients (medians of the pairs)",
    )
    for loop in rates:
        ratio = figures[f"{loop}_ratio"]
        low, high = figures[f"{loop}_ratio_range"]
        uses = figures[f"{loop}_benches_use"]
        agrees = (ratio < LIBRARY_BOUND) == (uses == "raw")
        table.add_row(
            loop,
            f"{figures[f'{loop}_raw_per_s']:,.1f}",
            f"{figures[f'{loop}_keystoneauth_per_s']:,.1f}",
            f"{ratio:.2f} ({low:.2f}-{high:.2f})",
            f"{figures[f'{loop}_added_ms']:.3f}",
            uses if agrees else f"[red]{uses} (measured: the other)[/red]",
        )
    console.print(table)


def clients(
    seconds: Annotated[float, typer.Option(min=0.5, help="Seconds per loop and round")] = 3.0,
    rounds: Annotated[int, typer.Option(min=4, max=16, help="bcrypt cost (issue)")] = 12,
    probes: Annotated[int, typer.Option(min=4, help="Probes submitted per round")] = 1000,
    repeats: Annotated[int, typer.Option(min=1, help="Pairs (raw, keystoneauth1) per loop")] = 3,
    with_keystone: Annotated[
        bool,
        typer.Option("--keystone/--no-keystone", help="Also real Keystone (when installed)"),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print figures as JSON last")] = False,
) -> None:
    """The benches' timed loops through the raw client and through keystoneauth1, same
    servers, one run: where the library would cap the rate, the benches keep the raw client."""
    rates: Rates = {}
    with tempfile.TemporaryDirectory(prefix="cascade-bench-clients-") as temporary:
        root = Path(temporary)
        env = {"CASCADE_PASSWORD_HASH_ROUNDS": str(rounds), "CASCADE_LOG_LEVEL": "warning"}
        with EmbeddedCascade(root / "cascade", PASSWORD, env=env) as cascade:
            session = login(password_auth_plugin(f"{cascade.url}/identity/v3", PASSWORD))
            admin, user_id, project_id = identity.admin_login(session)
            keys = str(root / "cascade" / "fernet-keys")
            target = identity.Target(cascade.port, admin, user_id, project_id, keys)
            _identity_loops(target, seconds, repeats, rates)
            connect: dict[str, Callable[[], Client]] = {
                "raw": lambda: KeepAliveConnection(cascade.port, admin),
                "keystoneauth": lambda: SessionClient(
                    ks_session.Session(auth=session.auth), cascade.url
                ),
            }
            _submit_loop(connect, probes, repeats, rates)
        _site_loops(root, seconds, repeats, rates)
    if with_keystone:
        why = keystone.unavailable()
        if why:
            console.print(f"real Keystone not measured: {why}")
        else:
            _keystone_loop(seconds, repeats, rates)
    figures = _figures(rates)
    _report(rates, figures)
    if as_json:
        print(json.dumps(figures))
