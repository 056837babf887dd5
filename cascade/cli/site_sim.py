"""``cascade site-sim``: serve one emulated OpenStack region."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cascade.config import HASH_ROUNDS, MAX_HASH_ROUNDS, MIN_HASH_ROUNDS
from cascade.errors import CascadeError
from cascade_sim.faults import Faults, RouteErrors
from cascade_sim.network import check_config
from cascade_sim.region import Region, RegionConfig

console = Console()


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, separator, setting = value.partition("=")
        if not separator or not key or not setting:
            raise CascadeError(f"{option} takes KEY=VALUE, got {value!r}")
        pairs[key] = setting
    return pairs


def _number(text: str, option: str) -> float:
    try:
        return float(text)
    except ValueError as error:
        raise CascadeError(f"{option}: {text!r} is not a number") from error


def apply_fault_flags(
    faults: Faults,
    latency: list[str],
    errors: list[str],
    unavailable: bool,
    quiesce_failures: list[str],
) -> None:
    """Faults given on the command line; the same ones the /sim/v1/faults API sets."""
    faults.latency = {k: _number(v, "--latency") for k, v in _pairs(latency, "--latency").items()}
    for route, rate in _pairs(errors, "--error-rate").items():
        method, _, prefix = route.rpartition(":")
        faults.route_errors.append(
            RouteErrors(method or "*", prefix, _number(rate, "--error-rate"))
        )
    faults.unavailable = unavailable
    faults.quiesce_failures = set(quiesce_failures)


def site_sim(
    name: Annotated[str, typer.Option(help="Region name (also the default region name)")],
    data_dir: Annotated[Path, typer.Option(help="Where the site keeps its state")],
    port: Annotated[int, typer.Option(min=1, max=65535)] = 5101,
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    hosts: Annotated[int, typer.Option(min=1, max=1000, help="Simulated compute hosts")] = 4,
    region: Annotated[str | None, typer.Option(help="Region name [default: the name]")] = None,
    admin_password: Annotated[
        str | None,
        typer.Option(
            envvar="CASCADE_SITE_ADMIN_PASSWORD",
            help="Region admin password [default: generated, kept in DATA_DIR/admin-password]",
        ),
    ] = None,
    build_seconds: Annotated[float, typer.Option(min=0, help="Server/volume build time")] = 1.0,
    backup_dir: Annotated[
        Path | None, typer.Option(help="Backup store shared with other sites")
    ] = None,
    latency: Annotated[
        list[str], typer.Option(help="SERVICE=SECONDS added latency (compute, volume, ..., *)")
    ] = [],  # noqa: B006 - Typer reads list defaults
    error_rate: Annotated[
        list[str], typer.Option(help="[METHOD:]PATH_PREFIX=RATE injected 500s")
    ] = [],  # noqa: B006
    unavailable: Annotated[bool, typer.Option(help="Answer 503 to everything")] = False,
    quiesce_failure: Annotated[
        list[str], typer.Option(help="Server id or name whose quiesce fails")
    ] = [],  # noqa: B006
    dataplane: Annotated[
        str,
        typer.Option(
            help="What the compute hosts' agents program: memory, or linux (root: a network "
            "namespace per host, a VM namespace per port)"
        ),
    ] = "memory",
    underlay: Annotated[
        str | None,
        typer.Option(
            help="NETNS/BRIDGE (NETNS empty: the root namespace): plug each linux host "
            "namespace into this existing bridge, so hosts of other sites are reachable"
        ),
    ] = None,
    password_hash_rounds: Annotated[
        int,
        typer.Option(
            min=MIN_HASH_ROUNDS,
            max=MAX_HASH_ROUNDS,
            envvar="CASCADE_PASSWORD_HASH_ROUNDS",
            help="bcrypt cost factor of the region's stored passwords (Keystone's default; "
            "each password login costs 2^N rounds)",
        ),
    ] = HASH_ROUNDS,
    image_quota_mib: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="MiB each project's images may total (Glance's image_size_total); more is "
            "refused 413 [default: no limit; PUT /sim/v1/image-quota changes it]",
        ),
    ] = None,
) -> None:
    """Serve one emulated OpenStack region (Keystone, Nova, Cinder, Neutron, Glance, Swift)."""
    import uvicorn

    from cascade_sim.app import create_region_app
    from cascade_sim.listener import ReopenableServer, bind

    config = RegionConfig(
        name=name,
        data_dir=data_dir,
        port=port,
        host=host,
        region=region,
        hosts=hosts,
        admin_password=admin_password,
        build_seconds=build_seconds,
        password_hash_rounds=password_hash_rounds,
        backup_dir=backup_dir,
        dataplane=dataplane,
        underlay=underlay,
        image_quota_mib=image_quota_mib,
    )
    check_config(config)
    faults = Faults()  # checked before anything is written to the data dir
    apply_fault_flags(faults, latency, error_rate, unavailable, quiesce_failure)
    listener = bind(host, port)  # a busy port fails here, before the data dir or any banner
    site = Region(config, faults)
    site.bootstrap()
    where = "" if admin_password else f"; admin password in {data_dir / 'admin-password'}"
    console.print(
        f"site {name} (region {config.region_name}) on {config.base_url}, {hosts} hosts "
        f"({dataplane} dataplane){where}"
    )
    app = create_region_app(site)
    server = ReopenableServer(
        uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    )
    app.state.server = server  # lets /sim/v1/outage close and reopen the listening socket
    server.run(sockets=[listener])
