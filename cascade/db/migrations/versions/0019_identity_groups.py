"""Identity groups (issue 18): groups, their members and their role assignments; implied
roles (admin implies member, member implies reader, as rows now, as Keystone's bootstrap
makes them); policies and OAuth 1.0a consumers; project tags and parents; the attributes
Keystone keeps for users and projects beyond its own (``extra``). System role assignments
of users need no schema change (``role_assignments.target_type = 'system'``).

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
    op.add_column("projects", sa.Column("tags", sa.JSON, nullable=False, server_default="[]"))
    for name in ("projects", "users"):
        op.add_column(name, sa.Column("extra", sa.JSON, nullable=False, server_default="{}"))
    op.add_column("projects", sa.Column("parent_id", sa.String(64), nullable=True))
    op.create_index("ix_projects_parent_id", "projects", ["parent_id"])
    op.execute("UPDATE projects SET parent_id = domain_id")
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

    op.create_table(
        "policies",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("blob", sa.Text, nullable=False),
        sa.Column("extra", sa.JSON, nullable=False),
    )
    op.create_table(
        "oauth_consumers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("secret", sa.String(64), nullable=False),
    )
    implied = op.create_table(
        "implied_roles",
        sa.Column("prior_role_id", sa.String(64), sa.ForeignKey("roles.id"), primary_key=True),
        sa.Column("implied_role_id", sa.String(64), sa.ForeignKey("roles.id"), primary_key=True),
    )
    roles: dict[str, str] = dict(op.get_bind().execute(sa.text("SELECT name, id FROM roles")).all())
    pairs = [("admin", "member"), ("member", "reader")]
    rows = [
        {"prior_role_id": roles[prior], "implied_role_id": roles[then]}
        for prior, then in pairs
        if prior in roles and then in roles
    ]
    if rows:
        op.bulk_insert(implied, rows)


def downgrade() -> None:
    op.drop_table("oauth_consumers")
    op.drop_table("policies")
    op.drop_table("implied_roles")
    op.drop_table("group_role_assignments")
    op.drop_table("group_members")
    op.drop_table("groups")
    with op.batch_alter_table("users") as users:
        users.drop_column("extra")
    op.drop_index("ix_projects_parent_id", "projects")
    with op.batch_alter_table("projects") as projects:
        projects.drop_column("parent_id")
        projects.drop_column("extra")
        projects.drop_column("tags")
