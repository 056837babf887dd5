"""Replication (issue 17): policies, their jobs with an item per site and resource, and
Cascade's record of what it put at each site.

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

TIMESTAMP = sa.DateTime(timezone=True)

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _site() -> sa.Column[str]:
    return sa.Column("site_id", sa.String(64), sa.ForeignKey("sites.id"), primary_key=True)


def _parent(name: str, table: str) -> sa.Column[str]:
    foreign = sa.ForeignKey(f"{table}.id", ondelete="CASCADE")
    return sa.Column(name, sa.String(64), foreign, primary_key=True)


def upgrade() -> None:
    op.create_table(
        "replication_policies",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False, index=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source_site_id", sa.String(64), sa.ForeignKey("sites.id")),
        sa.Column("names", sa.JSON),
        sa.Column("sites", sa.JSON),
        sa.Column("conflict", sa.String(16), nullable=False),
        sa.Column("bandwidth_limit", sa.BigInteger),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("task_operation_id", sa.String(32)),
        sa.Column("error", sa.Text),
        sa.Column("drift", sa.JSON, nullable=False),
        sa.Column("audited_at", TIMESTAMP),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "replication_jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "policy_id",
            sa.String(64),
            sa.ForeignKey("replication_policies.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("project_id", sa.String(64), nullable=False, index=True),
        sa.Column("operation_id", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("desired", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP),
    )
    op.create_table(
        "replication_items",
        _parent("job_id", "replication_jobs"),
        _site(),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("bytes_done", sa.BigInteger),
        sa.Column("bytes_total", sa.BigInteger),
        sa.Column("target_id", sa.String(255)),
        sa.Column("error", sa.Text),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "replica_records",
        _parent("policy_id", "replication_policies"),
        _site(),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("target_id", sa.String(255), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    for table in ("replica_records", "replication_items", "replication_jobs"):
        op.drop_table(table)
    op.drop_table("replication_policies")
