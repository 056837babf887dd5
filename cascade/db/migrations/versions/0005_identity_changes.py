"""The identity change log, the replicas following it (at the master) and a replica's
position in it (at the replica).

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

TIMESTAMP = sa.DateTime(timezone=True)
SEQ = sa.BigInteger().with_variant(sa.Integer, "sqlite")

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identity_changes",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("table", sa.String(64), nullable=False),
        sa.Column("key", sa.JSON, nullable=False),
        sa.Column("row", sa.JSON),
        sa.Column("changed_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "identity_replicas",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("seen_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "replica_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("master_url", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("master_head", sa.BigInteger, nullable=False),
        sa.Column("applied_at", TIMESTAMP, nullable=False),
        sa.Column("checked_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("replica_state")
    op.drop_table("identity_replicas")
    op.drop_table("identity_changes")
