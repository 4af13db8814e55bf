"""host shares: a host of one project lent to another, optionally limited to N GPUs

- host_shares (host_id, project_id, gpu_limit): the project's members see the host read-only
  and deploy their own applications on it; one share per host and project; a share goes with
  its host or its project.

Revision ID: c81d5e2f4a67
Revises: d58a1f3c7b20
Create Date: 2026-12-05 07:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c81d5e2f4a67"
down_revision = "d58a1f3c7b20"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "host_shares",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("gpu_limit", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name="fk_host_shares_host_id_hosts", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_host_shares_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_host_shares"),
        sa.UniqueConstraint("host_id", "project_id", name="uq_host_shares_host_id"),
    )
    op.create_index("ix_host_shares_host_id", "host_shares", ["host_id"])
    op.create_index("ix_host_shares_project_id", "host_shares", ["project_id"])


def downgrade():
    op.drop_index("ix_host_shares_project_id", table_name="host_shares")
    op.drop_index("ix_host_shares_host_id", table_name="host_shares")
    op.drop_table("host_shares")
