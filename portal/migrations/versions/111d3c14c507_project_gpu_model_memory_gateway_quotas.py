"""project quotas: GPUs per GPU model, GPU memory, gateway RPM and tokens per day / month

- projects: gpu_model_limits (JSON, GPU model -> devices), gpu_memory_limit_mib,
  gateway_rpm_limit, gateway_tokens_per_day_limit, gateway_tokens_per_month_limit; all null
  (no limit) for existing projects.
- gateway_usage.project_id: the project whose quota a gateway request counted against (no
  foreign key: usage records outlive the project, as audit records do); existing rows get their
  key's project.

Revision ID: 111d3c14c507
Revises: b3e71c5a9d42
Create Date: 2026-12-05 07:10:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "111d3c14c507"
down_revision = "b3e71c5a9d42"
branch_labels = None
depends_on = None

LIMITS = {
    "gpu_memory_limit_mib": sa.Integer,
    "gateway_rpm_limit": sa.Integer,
    "gateway_tokens_per_day_limit": sa.BigInteger,
    "gateway_tokens_per_month_limit": sa.BigInteger,
}


def upgrade():
    with op.batch_alter_table("projects", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("gpu_model_limits", sa.JSON(), nullable=True))
        for name, kind in LIMITS.items():
            batch.add_column(sa.Column(name, kind(), nullable=True))
    with op.batch_alter_table("gateway_usage") as batch:
        batch.add_column(sa.Column("project_id", sa.Integer(), nullable=True))
        batch.create_index("ix_gateway_usage_project_id_at", ["project_id", "at"])
    op.get_bind().execute(
        sa.text(
            "UPDATE gateway_usage SET project_id = (SELECT gateway_keys.project_id "
            "FROM gateway_keys WHERE gateway_keys.public_id = gateway_usage.key_id)"
        )
    )


def downgrade():
    with op.batch_alter_table("gateway_usage") as batch:
        batch.drop_index("ix_gateway_usage_project_id_at")
        batch.drop_column("project_id")
    with op.batch_alter_table("projects", table_kwargs={"sqlite_autoincrement": True}) as batch:
        for name in reversed(list(LIMITS)):
            batch.drop_column(name)
        batch.drop_column("gpu_model_limits")
