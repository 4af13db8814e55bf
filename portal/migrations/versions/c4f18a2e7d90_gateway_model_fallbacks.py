"""gateway model fallbacks

Each gateway model may name other models the gateway tries, in order, when all its replicas
fail or answer 429. Existing models get none.

Revision ID: c4f18a2e7d90
Revises: 7e2f4a9c1b36
Create Date: 2026-12-06 17:10:00

"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "c4f18a2e7d90"
down_revision = "7e2f4a9c1b36"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("gateway_models", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fallbacks", sa.JSON(), server_default="[]", nullable=False)
        )


def downgrade():
    with op.batch_alter_table("gateway_models", schema=None) as batch_op:
        batch_op.drop_column("fallbacks")
