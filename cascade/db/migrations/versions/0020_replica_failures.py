"""Replication: what a policy's jobs failed to write at a site, and the audit's backoff for it
(``replica_failures``).

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "replica_failures",
        sa.Column(
            "policy_id",
            sa.String(64),
            sa.ForeignKey("replication_policies.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("site_id", sa.String(64), sa.ForeignKey("sites.id"), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("wait_passes", sa.Integer, nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("replica_failures")
