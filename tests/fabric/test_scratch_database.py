"""``scratch_database``: the goal state of a site-sim or a fleet-sim, derived anew at each
start, in a new SQLite file holding the fabric tables alone, which a goal store works on."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, select

from cascade.db.models import FabricPort
from cascade.fabric.goal import GoalStore, PortSpec, scratch_database


def test_a_scratch_database_replaces_the_file_and_holds_the_fabric_tables(tmp_path: Path) -> None:
    path = tmp_path / "fabric.db"
    path.write_bytes(b"what the last start left")  # not even a database: replaced
    db = scratch_database(path)
    try:
        assert sorted(inspect(db.engine).get_table_names()) == [
            "fabric_hosts",
            "fabric_memberships",
            "fabric_networks",
            "fabric_ports",
        ]
        goal = GoalStore(db)
        goal.register_host("h1", "192.0.2.1")
        goal.create_network("n1", 5001, "10.0.0.0/24")
        goal.add_port(PortSpec("p1", "n1", "h1", "fa:16:3e:00:00:01", "10.0.0.5"))
        with db.session() as session:
            assert session.scalars(select(FabricPort.id)).all() == ["p1"]
    finally:
        db.dispose()
