"""Fabric ports: allowed addresses (Neutron's allowed address pairs), NULL when none.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fabric_ports") as table:
        table.add_column(sa.Column("allowed_ips", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fabric_ports") as table:
        table.drop_column("allowed_ips")
