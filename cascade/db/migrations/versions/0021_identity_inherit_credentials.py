"""Identity (issue 18): inherited role assignments (OS-INHERIT), credentials encrypted at rest
(``/v3/credentials`` and EC2 keys), endpoint groups and project endpoints (OS-EP-FILTER).

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inherited_role_assignments",
        sa.Column("actor_id", sa.String(64), primary_key=True),
        sa.Column("target_id", sa.String(64), primary_key=True),
        sa.Column("role_id", sa.String(64), sa.ForeignKey("roles.id"), primary_key=True),
        sa.Column("actor_type", sa.String(8), nullable=False),
        sa.Column("target_type", sa.String(16), nullable=False),
    )
    op.create_table(
        "credentials",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=True),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("encrypted_blob", sa.Text, nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("extra", sa.JSON, nullable=False),
    )
    op.create_index("ix_credentials_user_id", "credentials", ["user_id"])
    op.create_table(
        "endpoint_groups",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("filters", sa.JSON, nullable=False),
    )
    op.create_table(
        "project_endpoints",
        sa.Column("endpoint_id", sa.String(64), sa.ForeignKey("endpoints.id"), primary_key=True),
        sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), primary_key=True),
    )
    op.create_table(
        "project_endpoint_groups",
        sa.Column(
            "endpoint_group_id",
            sa.String(64),
            sa.ForeignKey("endpoint_groups.id"),
            primary_key=True,
        ),
        sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("project_endpoint_groups")
    op.drop_table("project_endpoints")
    op.drop_table("endpoint_groups")
    op.drop_index("ix_credentials_user_id", "credentials")
    op.drop_table("credentials")
    op.drop_table("inherited_role_assignments")
