"""Protection: plans, their members and their checkpoints.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

TIMESTAMP = sa.DateTime(timezone=True)

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "protection_plans",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False, index=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("source_site_id", sa.String(64), sa.ForeignKey("sites.id"), nullable=False),
        sa.Column("target_site_id", sa.String(64), sa.ForeignKey("sites.id"), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("freeze_bound_s", sa.Float, nullable=False),
        sa.Column("retention", sa.Integer, nullable=False),
        sa.Column("site_group_id", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("task_operation_id", sa.String(32)),
        sa.Column("error", sa.Text),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("project_id", "name"),
    )
    op.create_table(
        "plan_members",
        sa.Column(
            "plan_id",
            sa.String(64),
            sa.ForeignKey("protection_plans.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("server_id", sa.String(64), sa.ForeignKey("servers.id"), nullable=False),
        sa.Column("volume_ids", sa.JSON, nullable=False),
    )
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "plan_id",
            sa.String(64),
            sa.ForeignKey("protection_plans.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("project_id", sa.String(64), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("operation_id", sa.String(32), nullable=False),
        sa.Column("consistency_point", TIMESTAMP),
        sa.Column("site_group_snapshot_id", sa.String(64)),
        sa.Column("volumes", sa.JSON, nullable=False),
        sa.Column("frozen", sa.JSON, nullable=False),
        sa.Column("frozen_by", sa.String(64)),
        sa.Column("first_freeze_at", TIMESTAMP),
        sa.Column("last_thaw_at", TIMESTAMP),
        sa.Column("error", sa.Text),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("checkpoints")
    op.drop_table("plan_members")
    op.drop_table("protection_plans")
