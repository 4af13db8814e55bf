"""operation callbacks kept as an outbox

A callback owed is written with the operation's final state (callback_state "pending" and a
due time), so recovery re-sends callbacks that a killed worker never delivered.

Revision ID: 5c0b7d3e9a21
Revises: 18411f15e88a
Create Date: 2026-12-04 13:40:00

"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "5c0b7d3e9a21"
down_revision = "18411f15e88a"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("operations") as batch:
        batch.add_column(
            sa.Column("callback_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("callback_due_at", sa.DateTime(), nullable=True))
        batch.create_index("ix_operations_callback_due", ["callback_state", "callback_due_at"])


def downgrade():
    with op.batch_alter_table("operations") as batch:
        batch.drop_index("ix_operations_callback_due")
        batch.drop_column("callback_due_at")
        batch.drop_column("callback_attempts")
