"""proxy contracts: the config document contract each proxy speaks, and why one was refused

- monitoring_proxy_instances.contract: what the proxy sent in Spectr-Proxy-Contract (none
  before proxies versioned the contract).
- monitoring_proxy_instances.refusal: the portal's message when it refused that contract; the
  proxy status page shows it.

Revision ID: 2625889e46ba
Revises: a41c7e09b3d5
Create Date: 2026-12-05 00:15:00

"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "2625889e46ba"
down_revision = "a41c7e09b3d5"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("monitoring_proxy_instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contract", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("refusal", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("monitoring_proxy_instances", schema=None) as batch_op:
        batch_op.drop_column("refusal")
        batch_op.drop_column("contract")
