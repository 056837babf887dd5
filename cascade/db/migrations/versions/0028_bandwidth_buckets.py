"""Replication: the image copies' bandwidth buckets (``bandwidth_buckets``), one per target
site and limit, shared by every worker so the limit holds for the whole cluster.

Revision ID: 0028
Revises: 0027
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bandwidth_buckets",
        sa.Column("site", sa.String(255), primary_key=True),
        sa.Column("rate", sa.BigInteger, primary_key=True),
        sa.Column("free_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("bandwidth_buckets")
