"""Keypairs as replication sees them: the desired state is Cascade's own keypairs of the
project (``/v1/keypairs``), compared with a site's keys by fingerprint (Nova's) alone. A
changed key cannot be edited in Nova: it is deleted and imported again."""

from __future__ import annotations

from openstack.connection import Connection
from sqlalchemy import select

from cascade.db.models import Keypair
from cascade.db.replication_models import ReplicationPolicy
from cascade.engine.context import EngineContext
from cascade.replication.keypairs import fingerprint
from cascade.replication.kinds import Found, Kind, State, register


class Keypairs(Kind):
    name = "keypairs"
    singular = "keypair"

    def listing(self, c: Connection) -> dict[str, Found]:
        return {k.name: Found(k.name, {"fingerprint": k.fingerprint}) for k in c.compute.keypairs()}

    def digest(self, state: State) -> str:
        return super().digest({"fingerprint": state["fingerprint"]})

    def write(
        self, c: Connection, name: str, state: State, found: Found | None, ids: dict[str, str]
    ) -> str:
        if found is not None:
            c.compute.delete_keypair(name, ignore_missing=True)
        c.compute.create_keypair(name=name, public_key=state["public_key"])
        return name

    def delete(self, c: Connection, found: Found) -> None:
        c.compute.delete_keypair(found.id, ignore_missing=True)

    def desired(self, engine: EngineContext, policy: ReplicationPolicy) -> dict[str, State]:
        with engine.db.session() as session:
            keys = session.scalars(
                select(Keypair).where(
                    Keypair.project_id == policy.project_id, Keypair.status != "DELETING"
                )
            )
            return {
                k.name: {"fingerprint": fingerprint(k.public_key), "public_key": k.public_key}
                for k in keys
                if policy.names is None or k.name in policy.names
            }


KEYPAIRS = register(Keypairs())
