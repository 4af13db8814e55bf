"""host containers: published ports and when the current run started

The health sweep keeps each container's published ports (shown on host and application pages)
and the time its current run started: a container.restarting event closes only after the
container has run steadily for a while, not at the first sweep that catches it up.

Revision ID: f3a9d2c6b871
Revises: c4f18a2e7d90
Create Date: 2026-12-07 10:00:00

"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "f3a9d2c6b871"
down_revision = "c4f18a2e7d90"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("host_containers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ports", sa.JSON(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("started_at", sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("host_containers", schema=None) as batch_op:
        batch_op.drop_column("started_at")
        batch_op.drop_column("ports")
