"""Identity groups (issue 18): groups, their members and their role assignments. System role
assignments of users need no schema change (``role_assignments.target_type = 'system'``).

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("domain_id", sa.String(64), sa.ForeignKey("domains.id"), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.UniqueConstraint("domain_id", "name"),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.String(64), sa.ForeignKey("groups.id"), primary_key=True),
        sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id"), primary_key=True),
    )
    op.create_table(
        "group_role_assignments",
        sa.Column("group_id", sa.String(64), sa.ForeignKey("groups.id"), primary_key=True),
        sa.Column("target_id", sa.String(64), primary_key=True),
        sa.Column("role_id", sa.String(64), sa.ForeignKey("roles.id"), primary_key=True),
        sa.Column("target_type", sa.String(16), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("group_role_assignments")
    op.drop_table("group_members")
    op.drop_table("groups")
