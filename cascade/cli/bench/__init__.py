"""``cascade bench ...``: benchmarks are commands, not timed tests. Each takes ``--json`` and
then prints its figures as one JSON object on the last line."""

from __future__ import annotations

import typer

from cascade.cli.bench import (
    clients,
    engine,
    fabric,
    fdb,
    identity,
    network,
    protect,
    replicate,
    site,
)

app = typer.Typer(help="Benchmarks (commands, not tests).", no_args_is_help=True)
app.command("clients")(clients.clients)
app.command("engine")(engine.engine)
app.command("fabric")(fabric.fabric)
app.command("fdb")(fdb.fdb)
app.command("identity")(identity.identity)
app.command("network")(network.network)
app.command("protect")(protect.protect)
app.command("replicate")(replicate.replicate)
app.command("site")(site.site)
