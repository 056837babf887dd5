"""Fabric ports: remote ports (a neighbour at a tunnel endpoint outside this fabric: no host,
its own ``vtep``) and port security.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fabric_ports") as table:
        table.alter_column("host", existing_type=sa.String(255), nullable=True)
        table.add_column(sa.Column("vtep", sa.String(64), nullable=True))
        table.add_column(
            sa.Column("port_security", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    # The older schema has no place for a port without a host: remote ports are dropped.
    op.execute(sa.text("DELETE FROM fabric_ports WHERE host IS NULL"))
    with op.batch_alter_table("fabric_ports") as table:
        table.drop_column("port_security")
        table.drop_column("vtep")
        table.alter_column("host", existing_type=sa.String(255), nullable=False)
