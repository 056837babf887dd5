"""Key distribution: each replica's node key and the key set it holds, the replica's pinned
master node key, and the master's history of key sets.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("identity_replicas") as table:
        table.add_column(sa.Column("public_key", sa.Text))
        table.add_column(sa.Column("key_set", sa.String(64)))
    with op.batch_alter_table("replica_state") as table:
        table.add_column(sa.Column("master_public_key", sa.Text))
    op.create_table(
        "identity_key_sets",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("fingerprints", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("identity_key_sets")
    with op.batch_alter_table("replica_state") as table:
        table.drop_column("master_public_key")
    with op.batch_alter_table("identity_replicas") as table:
        table.drop_column("key_set")
        table.drop_column("public_key")
